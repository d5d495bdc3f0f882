"""The review map (一张图) in headless Chromium: sign in, filter, open a patch, review it, the conflict case,
exports and statistics. Each test saves screenshots (see ``conftest.py``) and fails if the page asked any
host but the test server for anything."""

from __future__ import annotations

import csv
import io
import json

import pytest

pytestmark = pytest.mark.slow

TILES_LOADED = "n => document.querySelectorAll('.leaflet-pane img.leaflet-tile-loaded[src^=\"blob:\"]').length >= n"


def _item(page, patch_id: int):
    return page.locator(f"#list li[data-id='{patch_id}']")


def test_sign_in_shows_the_district_on_the_imagery(kit):
    page = kit.page
    page.goto(f"{kit.live.url}/map")
    page.fill("#token", "sw_not-a-token")
    page.click("#signin-form button[type=submit]")
    page.wait_for_function("document.querySelector('#signin-error').textContent.length > 0")
    assert "令牌无效" in page.text_content("#signin-error")
    kit.shot("1-bad-token")

    kit.sign_in("inspector")
    assert page.locator("#list li").count() == 5
    assert page.text_content("#count") == "共 5 个图斑"
    assert "inspector" in page.text_content("#who")
    page.wait_for_function(TILES_LOADED, arg=2)  # before and after tiles, fetched with the token
    assert page.is_visible(".swipe-handle") and "2024-06-01" in page.text_content(".swipe-label.right")
    assert page.locator(".leaflet-overlay-pane path").count() >= 5 + 3 + 1  # patches, projects, district
    kit.shot("2-signed-in")

    page.click("#lang")
    assert page.text_content("#tabs [data-view=stats]") == "Statistics"
    assert page.text_content("#count") == "5 patches"
    assert "Suspected unapproved" in page.text_content("#list")
    kit.shot("3-english")
    page.click("#lang")
    assert page.text_content("#tabs [data-view=stats]") == "统计"

    page.reload()  # the token stays for the session (sessionStorage)
    page.wait_for_selector("#list li")
    page.click("#signout")
    assert page.is_visible("#signin") and page.evaluate("sessionStorage.getItem('soilwatch.token')") is None


def test_filter_the_list(kit):
    page = kit.page
    kit.sign_in("viewer")
    assert page.is_disabled("#save")  # viewers read only
    page.select_option("#filters select[name=category]", "suspected_unapproved")
    page.wait_for_function("document.querySelectorAll('#list li').length === 2")
    assert set(page.locator("#list .cat").all_text_contents()) == {"疑似未批先建"}
    page.fill("#filters input[name=min_area_mu]", "2")  # 2 亩 = 1333 m²: keeps the 44 × 36 m patch only
    page.dispatch_event("#filters input[name=min_area_mu]", "change")
    page.wait_for_function("document.querySelectorAll('#list li').length === 1")
    kit.shot("1-filtered")
    page.select_option("#filters select[name=category]", "")
    page.fill("#filters input[name=min_area_mu]", "")
    page.dispatch_event("#filters input[name=min_area_mu]", "change")
    page.wait_for_function("document.querySelectorAll('#list li').length === 5")
    page.select_option("#filters select[name=sort]", "area")
    areas = [float(t.split()[0]) for t in page.locator("#list .meta").all_text_contents()]
    assert areas == sorted(areas, reverse=True)
    page.select_option("#filters select[name=sort]", "confidence")
    shown = [float(t.split("置信度")[1].split()[0]) for t in page.locator("#list .meta").all_text_contents()]
    assert shown == sorted(shown, reverse=True) and len(shown) == 5
    page.fill("#filters input[name=min_confidence]", "0.78")  # the world's patches have 0.90, 0.85 … 0.70
    page.dispatch_event("#filters input[name=min_confidence]", "change")
    page.wait_for_function("document.querySelectorAll('#list li').length === 3")
    page.fill("#filters input[name=min_confidence]", "")
    page.dispatch_event("#filters input[name=min_confidence]", "change")
    page.wait_for_function("document.querySelectorAll('#list li').length === 5")
    page.fill("#filters input[name=after_from]", "2025-01-01")
    page.dispatch_event("#filters input[name=after_from]", "change")
    page.wait_for_function("document.querySelectorAll('#list li').length === 0")


def test_open_a_patch_and_review_it_with_the_keyboard(kit, tmp_path):
    page, live = kit.page, kit.live
    kit.sign_in("inspector")
    first = int(page.locator("#list li").first.get_attribute("data-id"))
    second = int(page.locator("#list li").nth(1).get_attribute("data-id"))
    page.locator("#list li").first.click()
    page.wait_for_function("document.querySelector('#p-title').textContent.length > 0")
    page.keyboard.press("j")
    page.wait_for_selector(f"#list li.selected[data-id='{second}']")
    page.keyboard.press("k")
    page.wait_for_selector(f"#list li.selected[data-id='{first}']")
    with live.api("inspector") as api:
        patch = api.get(f"/api/v1/patches/{first}").json()
    page.wait_for_function(f"document.querySelector('#p-title').textContent === {json.dumps(patch['patch_code'])}")
    page.wait_for_function("['before', 'after'].every(w => document.getElementById('chip-' + w).naturalWidth > 0)")
    assert "疑似未批先建" in page.text_content("#p-attrs")
    page.wait_for_function(TILES_LOADED, arg=2)
    kit.shot("1-patch-open")

    page.keyboard.press("1")
    assert page.is_checked("#verdicts input[value=confirmed_violation]")
    page.fill("#review textarea[name=note]", "现场核实：新建厂房地基开挖。建设单位：天津某建材公司")
    photo = tmp_path / "现场照片.png"
    from tests.service.web import world

    photo.write_bytes(world.png_bytes())
    page.set_input_files("#review input[name=photos]", str(photo))
    page.keyboard.press("Control+Enter")
    page.wait_for_function("document.querySelector('#review-msg').textContent === '已保存。'")
    page.wait_for_selector(f"#list li[data-id='{first}'] .status-reviewed")
    page.wait_for_function("document.querySelector('#p-history').textContent.includes('违法违规')")
    kit.shot("2-reviewed")

    with live.api("viewer") as api:
        saved = api.get(f"/api/v1/patches/{first}").json()
        review = api.get(f"/api/v1/patches/{first}/history").json()["reviews"][-1]
        assert saved["verdict"] == "confirmed_violation" and saved["review_status"] == "reviewed"
        assert review["note"].startswith("现场核实") and len(review["photos"]) == 1
        name = review["photos"][0].removeprefix("photo:")
        assert api.get(f"/api/v1/patches/{first}/photos/{name}").content == world.png_bytes()


def test_a_conflict_shows_both_versions_and_keeps_what_was_typed(kit):
    page, live = kit.page, kit.live
    kit.sign_in("inspector")
    target = live.patch_ids[1]  # 疑似超出防治责任范围, half inside project P-B
    _item(page, target).click()
    page.wait_for_selector("#p-matches td")
    assert "蓟州区某物流园" in page.text_content("#p-matches")
    page.keyboard.press("1")
    page.fill("#review textarea[name=note]", "我的说明：超出红线部分堆放弃土")

    with live.api("supervisor") as api:  # someone else saves first
        etag = api.get(f"/api/v1/patches/{target}").headers["ETag"]
        response = api.post(f"/api/v1/patches/{target}/reviews", headers={"If-Match": etag},
                            json={"verdict": "not_construction", "note": "对方的说明：农田整治"})  # fmt: skip
        assert response.status_code == 201

    page.click("#save")
    page.wait_for_selector("#conflict:not([hidden])")
    conflict = page.text_content("#conflict")
    assert "别人先保存" in conflict and "对方的说明：农田整治" in conflict and "非生产建设项目" in conflict
    assert "我的说明：超出红线部分堆放弃土" in conflict and "违法违规" in conflict
    assert page.input_value("#review textarea[name=note]") == "我的说明：超出红线部分堆放弃土"
    assert page.is_checked("#verdicts input[value=confirmed_violation]")
    kit.shot("1-conflict")

    page.click("#c-overwrite")
    page.wait_for_function("document.querySelector('#review-msg').textContent === '已保存。'")
    assert page.is_hidden("#conflict")
    with live.api("viewer") as api:
        saved = api.get(f"/api/v1/patches/{target}").json()
        notes = [r["note"] for r in api.get(f"/api/v1/patches/{target}/history").json()["reviews"]]
    assert saved["verdict"] == "confirmed_violation"
    assert notes == ["对方的说明：农田整治", "我的说明：超出红线部分堆放弃土"]  # both kept in the history
    kit.shot("2-overwritten")


def test_exports_and_statistics(kit):
    page = kit.page
    kit.sign_in("viewer")
    page.select_option("#filters select[name=category]", "suspected_unapproved")
    page.wait_for_function("document.querySelectorAll('#list li').length === 2")
    with page.expect_download() as info:
        page.click("#list-exports button[data-format=csv]")
    download = info.value
    assert download.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(download.path().read_text(encoding="utf-8-sig"))))
    assert len(rows) == 2 and {r["category"] for r in rows} == {"suspected_unapproved"}
    page.check("#list-exports input[type=checkbox]")
    with page.expect_download() as info:
        page.click("#list-exports button[data-format=geojson]")
    collection = json.loads(info.value.path().read_text(encoding="utf-8"))
    assert len(collection["features"]) == 2 and "图斑编号" in collection["features"][0]["properties"]
    page.wait_for_function("document.querySelector('#list-exports .export-msg').textContent.includes('已导出')")
    kit.shot("1-exported")

    page.click("#tabs [data-view=stats]")
    page.wait_for_selector("#chart svg rect")
    assert "蓟州区" in page.text_content("#stats-table")
    assert page.locator("#stats-table tr").count() >= 3  # header, 蓟州区, total
    page.fill("#stats-filters input[name=period_start]", "2024-01-01")
    page.fill("#stats-filters input[name=period_end]", "2024-12-31")
    page.dispatch_event("#stats-filters input[name=period_end]", "change")
    page.wait_for_selector("#chart svg rect")
    with page.expect_download() as info:
        page.click("#stats-exports button[data-format=csv]")
    assert len(list(csv.DictReader(io.StringIO(info.value.path().read_text(encoding="utf-8-sig"))))) == 5
    kit.shot("2-statistics")


def test_priority_zones_on_the_map_in_the_list_and_the_panel(kit):
    from tests.service.web import world

    page, live = kit.page, kit.live
    kit.sign_in("inspector")
    with live.api("viewer") as api:
        inside = api.get("/api/v1/patches", params={"priority_zone": "any"}).json()["data"]
    assert len(inside) == 1 and inside[0]["priority"] == 80  # 疑似未批先建 30 + 水源保护区 50
    overlays = page.locator(".leaflet-control-layers-overlays label")
    assert "重点区域" in overlays.all_text_contents()[2]
    legend = page.text_content(".legend")
    assert "重点区域" in legend and "水源保护区" in legend and "陡坡" in legend
    paths = page.locator(".leaflet-overlay-pane path").count()
    assert paths >= 5 + 3 + 2 + 1  # patches, projects, zones, district
    first = page.locator("#list li").first  # the zone lifts the smaller unapproved patch to the top
    assert int(first.get_attribute("data-id")) == inside[0]["id"]
    assert first.locator(".zone-badge").text_content().strip() == "◆ 水源保护区"
    first.click()
    page.wait_for_function(f"document.querySelector('#p-attrs').textContent.includes({json.dumps(world.ZONE_NAME)})")
    assert "水源保护区 +50" in page.text_content("#p-attrs")
    kit.shot("1-zone")

    page.select_option("#filters select[name=priority_zone]", "any")
    page.wait_for_function("document.querySelectorAll('#list li').length === 1")
    page.select_option("#filters select[name=priority_zone]", label=f"{world.ZONE_NAME} (水源保护区)")
    page.wait_for_function("document.querySelectorAll('#list li').length === 1")
    page.select_option("#filters select[name=priority_zone]", "")
    page.wait_for_function("document.querySelectorAll('#list li').length === 5")

    overlays.filter(has_text="重点区域").locator("input").uncheck()  # the layer can be switched off
    page.wait_for_function(f"document.querySelectorAll('.leaflet-overlay-pane path').length === {paths - 2}")
    overlays.filter(has_text="重点区域").locator("input").check()
    page.click("#lang")
    assert "Priority zones" in page.text_content(".leaflet-control-layers-overlays")
    assert "Water source" in page.text_content(".legend") and "Water source +50" in page.text_content("#p-attrs")
    kit.shot("2-english")
    page.click("#lang")


def test_a_late_answer_to_an_older_filter_does_not_replace_the_newer_one(kit):
    """Filters change faster than a loaded server answers: the map and the list show the latest query only."""
    page = kit.page
    kit.sign_in("inspector")
    held = []
    page.route(lambda url: "patches.geojson" in url and "priority_zone=any" in url, lambda route: held.append(route))
    page.select_option("#filters select[name=priority_zone]", "any")  # its answer is held back
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the filtered request was never sent"
    page.select_option("#filters select[name=priority_zone]", "")
    page.wait_for_function("document.querySelectorAll('#list li').length === 5")
    with page.expect_response(lambda r: "priority_zone=any" in r.url):
        held[0].continue_()  # the older answer (one patch) arrives last
    page.wait_for_timeout(500)  # time for the page to draw it, if it would
    assert page.locator("#list li").count() == 5
    assert page.text_content("#count") == "共 5 个图斑"
    kit.shot("1-latest-query-kept")


def test_field_photos_show_as_thumbnails_in_the_history(kit):
    from tests.service.web import world

    page, live = kit.page, kit.live
    target = live.patch_ids[4]
    with live.api("inspector") as api:
        photo = api.post(f"/api/v1/patches/{target}/photos", files={"file": ("现场.png", world.png_bytes())}).json()
        etag = api.get(f"/api/v1/patches/{target}").headers["ETag"]
        body = {"verdict": "confirmed_violation", "note": "照片为证", "photos": [photo["ref"]]}
        assert api.post(f"/api/v1/patches/{target}/reviews", headers={"If-Match": etag}, json=body).status_code == 201
    kit.sign_in("viewer")
    _item(page, target).click()
    page.wait_for_selector("#p-history a.thumb img[src^='blob:']")  # fetched with the token, like the chips
    page.wait_for_function("document.querySelector('#p-history a.thumb img').naturalWidth === 2")
    assert "照片为证" in page.text_content("#p-history")
    assert page.get_attribute("#p-history a.thumb", "href").startswith("blob:")
    kit.shot("1-thumbnail")


def test_a_supervisor_assigns_the_open_patch(kit):
    page, live = kit.page, kit.live
    target = live.patch_ids[2]
    with live.api("inspector") as api:
        inspector_id = api.get("/api/v1/users/me").json()["id"]
    kit.sign_in("supervisor")
    _item(page, target).click()
    page.wait_for_selector(f"#assign:not([hidden]) #assignee option[value='{inspector_id}']", state="attached")
    options = page.locator("#assignee option").all_text_contents()
    assert options[1:] == ["inspector (inspector)", "supervisor (supervisor)"]  # 蓟州区's, inspectors first
    page.select_option("#assignee", label="inspector (inspector)")
    page.click("#assign-save")
    page.wait_for_function("document.querySelector('#assign-msg').textContent === '已分派给 inspector (inspector)。'")
    page.wait_for_selector(f"#list li[data-id='{target}'] .status-assigned")
    assert "inspector (inspector)" in page.text_content("#p-attrs")
    with live.api("viewer") as api:
        saved = api.get(f"/api/v1/patches/{target}").json()
    assert (saved["assignee_id"], saved["review_status"]) == (inspector_id, "assigned")
    page.wait_for_function("document.querySelector('#p-history').textContent.includes('updated')")
    kit.shot("1-assigned")

    with live.api("supervisor") as api:  # someone else changes the patch first: 412, reloaded, nothing lost
        etag = api.get(f"/api/v1/patches/{target}").headers["ETag"]
        changed = api.patch(
            f"/api/v1/patches/{target}", headers={"If-Match": etag}, json={"disturbance_type": "其他扰动"}
        )
        assert changed.status_code == 200
    page.select_option("#assignee", label="supervisor (supervisor)")
    page.click("#assign-save")
    page.wait_for_function("document.querySelector('#assign-msg').textContent.includes('别人先修改')")
    page.click("#assign-save")  # the reloaded patch's ETag: the second try goes through
    page.wait_for_function("document.querySelector('#assign-msg').textContent.startsWith('已分派给 supervisor')")

    page.click("#signout")
    kit.sign_in("inspector")  # inspectors see the assignment, not the controls
    _item(page, target).click()
    page.wait_for_function("document.querySelector('#p-attrs').textContent.includes('核查人员')")
    assert page.is_hidden("#assign")
