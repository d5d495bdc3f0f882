// The review map: sign-in, filters and list, the patch panel with the review form, keyboard, views.
import { ApiError, blobUrl, download, getJson, query, request, token, whenUnauthorised } from "./api.js";
import { applyText, getLang, setLang, t } from "./i18n.js";
import { CATEGORY_COLOURS, ReviewMap, ZONE_COLOURS } from "./map.js";
import { escape, loadStats, statsQuery } from "./stats.js";

const $ = (id) => document.getElementById(id);
const FORMATS = ["geojson", "gpkg", "shp", "kml", "csv"];
const state = {
  me: null, imagery: [], features: [], order: [], current: null, etag: null, map: null,
  zones: new Map(), assignees: new Map(), thumbs: [],
};
const MANAGERS = ["supervisor", "admin"]; // may assign patches (PATCH /patches/{id})

// --- sign-in ---------------------------------------------------------------------------------------------
async function signIn(value) {
  token.set(value);
  try {
    state.me = await getJson("/users/me");
  } catch (err) {
    token.clear();
    $("signin-error").textContent = t("signin.bad") + err.message;
    return;
  }
  $("signin").hidden = true;
  $("app").hidden = false;
  $("tabs").hidden = false;
  $("signout").hidden = false;
  $("who").textContent = `${state.me.name} · ${state.me.role}`;
  // viewers read only: the API would answer 403, so do not offer the form
  for (const field of $("review").elements) field.disabled = state.me.role === "viewer";
  await start();
}

function signOut(problem) {
  token.clear();
  location.hash = "";
  $("signin-error").textContent = problem ? t("signin.bad") + (problem.detail || "") : "";
  $("app").hidden = true;
  $("tabs").hidden = true;
  $("signout").hidden = true;
  $("signin").hidden = false;
  $("who").textContent = "";
}

// --- start-up: districts, imagery, layers ------------------------------------------------------------------
async function start() {
  if (!state.map) state.map = new ReviewMap($("map"), { onPick: (id) => openPatch(id).catch(report) });
  const [districts, imagery, boundaries, projects, zones] = await Promise.all([
    getJson("/districts"), getJson("/imagery?limit=500"), getJson("/map/districts.geojson"),
    getJson("/map/projects.geojson"), getJson("/map/priority-zones.geojson"),
  ]);
  for (const select of document.querySelectorAll("select[name=district]")) {
    select.length = 1;
    for (const d of districts.data) select.add(new Option(`${d.name} (${d.code})`, d.code));
  }
  state.imagery = imagery.data;
  for (const which of ["before", "after"]) {
    const select = $(`img-${which}`);
    select.replaceChildren(new Option(t("img.none"), ""));
    for (const row of state.imagery) select.add(new Option(`${row.acquired_on} · ${row.filename}`, row.id));
  }
  const [newest, previous] = state.imagery; // newest acquisition first
  $("img-after").value = newest?.id ?? "";
  $("img-before").value = previous?.id ?? "";
  showImagery();
  state.map.setLayer("districts", boundaries);
  state.map.setLayer("projects", projects);
  showZones(zones);
  await loadPatches();
  state.map.fitLayers();
  renderExports($("list-exports"), () => listFilters());
  renderExports($("stats-exports"), () => statsQuery($("stats-filters")).exportFilters);
}

/** The priority-zone layer, the zone filter's options and the names the list and the panel show. */
function showZones(collection) {
  state.zoneCollection = collection;
  state.zones = new Map(collection.features.map((f) => [f.properties.id, f.properties]));
  const select = $("filters").elements.priority_zone;
  const chosen = select.value;
  select.length = 2; // 全部, 任一重点区域
  for (const zone of state.zones.values()) select.add(new Option(`${zone.name} (${t(`zone.${zone.kind}`)})`, zone.id));
  select.value = chosen;
  state.map.setLayer("zones", collection);
}

function imageryById(id) { return state.imagery.find((row) => String(row.id) === String(id)) || null; }

function showImagery() {
  state.map.setImagery(imageryById($("img-before").value), imageryById($("img-after").value));
}

// --- filters, list ---------------------------------------------------------------------------------------
function listFilters() {
  const data = Object.fromEntries(new FormData($("filters")));
  const mu = parseFloat(data.min_area_mu);
  const conf = parseFloat(data.min_confidence);
  return {
    district: data.district, category: data.category, review_status: data.review_status,
    priority_zone: data.priority_zone,
    after_from: data.after_from, after_to: data.after_to,
    min_area_m2: Number.isFinite(mu) && mu > 0 ? (mu * 666.67).toFixed(1) : "",
    min_confidence: Number.isFinite(conf) && conf > 0 ? String(Math.min(conf, 1)) : "",
  };
}

async function loadPatches() {
  // filters can change faster than the server answers: only the latest request may draw the map and the list
  const ticket = (state.patchesTicket = (state.patchesTicket || 0) + 1);
  const collection = await getJson(`/map/patches.geojson${query(listFilters())}`);
  if (ticket !== state.patchesTicket) return;
  state.features = collection.features;
  state.map.setLayer("patches", collection);
  if (state.current) state.map.select(state.current.id);
  state.total = collection.count;
  renderList();
}

function sortFeatures() {
  const sort = $("filters").elements.sort.value;
  const props = state.features.map((f) => f.properties);
  if (sort === "area") props.sort((a, b) => b.area_m2 - a.area_m2);
  else if (sort === "date") props.sort((a, b) => (b.after_date || "").localeCompare(a.after_date || "") || b.priority - a.priority);
  else if (sort === "confidence") props.sort((a, b) => (b.confidence ?? -1) - (a.confidence ?? -1) || b.priority - a.priority);
  return props; // "priority": the server's order (priority, then area)
}

function renderList() {
  state.order = sortFeatures();
  const shown = state.order.length;
  $("count").textContent = t("count", { n: state.total }) + (state.total > shown ? t("truncated", { n: shown }) : "");
  const list = $("list");
  list.replaceChildren(...state.order.map((p) => {
    const item = document.createElement("li");
    item.dataset.id = p.id;
    item.className = p.id === state.current?.id ? "selected" : "";
    const status = p.verdict ? t(`v.${p.verdict}`) : t(`st.${p.review_status}`);
    item.innerHTML = `<span class="swatch" style="background:${CATEGORY_COLOURS[p.category] || "#888"}"></span>`
      + `<span class="code">${escape(p.patch_code)}</span><span class="cat">${escape(t(`cat.${p.category}`))}</span>`
      + `<span class="meta">${p.area_mu.toFixed(1)} ${getLang() === "en" ? "mu" : "亩"} · ${escape(p.after_date || "")}`
      + `${p.confidence == null ? "" : ` · ${escape(t("a.confidence"))} ${p.confidence.toFixed(2)}`}${zoneBadge(p.priority_zone_id)}</span>`
      + `<span class="status status-${escape(p.review_status)}">${escape(status)}</span>`;
    item.addEventListener("click", () => openPatch(p.id).catch(report));
    return item;
  }));
}

function zoneBadge(zoneId) {
  const zone = state.zones.get(zoneId);
  if (!zone) return "";
  const colour = ZONE_COLOURS[zone.kind] || ZONE_COLOURS.other;
  return ` <span class="zone-badge" style="color:${colour}" title="${escape(zone.name)}">◆ ${escape(t(`zone.${zone.kind}`))}</span>`;
}

function step(delta) {
  if (!state.order.length) return;
  const at = state.order.findIndex((p) => p.id === state.current?.id);
  const next = at < 0 ? 0 : Math.min(state.order.length - 1, Math.max(0, at + delta));
  openPatch(state.order[next].id).catch(report);
}

// --- the patch panel -------------------------------------------------------------------------------------
async function fetchPatch(id) {
  const response = await request(`/patches/${id}`, { raw: true });
  return { patch: await response.json(), etag: response.headers.get("ETag") };
}

async function openPatch(id) {
  if (state.current && state.current.id !== id) saveDraft();
  const seq = (state.seq = (state.seq || 0) + 1);
  const { patch, etag } = await fetchPatch(id);
  if (seq !== state.seq) return; // a later j/k press won
  state.current = patch;
  state.etag = etag;
  for (const item of $("list").children) item.classList.toggle("selected", Number(item.dataset.id) === id);
  $("list").querySelector(".selected")?.scrollIntoView({ block: "nearest" });
  $("panel-empty").hidden = true;
  $("panel-body").hidden = false;
  $("conflict").hidden = true;
  $("review-msg").textContent = "";
  $("assign-msg").textContent = "";
  renderPatch(patch);
  restoreDraft(patch.id);
  state.map.select(id);
  state.map.zoomTo(patch.bbox);
  followScanImagery(patch).catch(report);
  loadChips(patch.id);
  loadHistory(patch.id).catch(report);
}

async function followScanImagery(patch) {
  let ids = null;
  if (patch.scan_id) {
    try {
      const scan = await getJson(`/scans/${patch.scan_id}`);
      ids = [scan.before_imagery_id, scan.after_imagery_id];
    } catch { /* a deleted scan: fall back to the dates */ }
  }
  if (!ids) {
    const on = (day) => state.imagery.find((row) => row.acquired_on === day)?.id;
    ids = [on(patch.before_date), on(patch.after_date)];
  }
  if (ids[0]) $("img-before").value = ids[0];
  if (ids[1]) $("img-after").value = ids[1];
  showImagery();
}

function renderPatch(p) {
  $("p-title").textContent = p.patch_code;
  const area = `${p.area_m2.toFixed(0)} m² · ${p.area_mu.toFixed(2)} ${getLang() === "en" ? "mu" : "亩"}`;
  const rows = [
    ["a.district", p.district_code], ["a.category", t(`cat.${p.category}`)], ["a.reason", p.category_reason],
    ["a.area", area], ["a.dates", `${p.before_date || "?"} → ${p.after_date || "?"}`], ["a.change", p.change_type],
    ["a.confidence", p.confidence == null ? null : p.confidence.toFixed(2)],
    ["a.outside", p.outside_area_m2 == null ? null : `${p.outside_area_m2.toFixed(0)} m² (${Math.round(p.outside_share * 100)}%)`],
    ["a.nearest", p.nearest_distance_m == null ? null : `${p.nearest_distance_m.toFixed(0)} m`],
    ["a.status", t(`st.${p.review_status}`)], ["a.verdict", p.verdict ? t(`v.${p.verdict}`) : null],
    ["a.priority", p.priority],
    ["a.zones", (p.priority_zones || []).map((z) => `${z.name}（${t(`zone.${z.kind}`)} +${z.weight}）`).join("；")],
    ["a.assignee", assigneeName(p)], ["a.centroid", `${p.lon.toFixed(5)}, ${p.lat.toFixed(5)}`],
  ];
  $("p-attrs").innerHTML = rows.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => `<dt>${t(k)}</dt><dd>${escape(v)}</dd>`).join("");
  $("p-matches").innerHTML = p.matches.length
    ? `<tr><th>${t("p.project")}</th><th>${t("p.overlap")}</th><th>${t("p.share")}</th></tr>`
      + p.matches.map((m) => `<tr><td>${escape(m.project_name || "")} <small>${escape(m.project_code || "")}</small></td>`
        + `<td>${m.overlap_area_m2.toFixed(0)}</td><td>${Math.round(m.overlap_share * 100)}%</td></tr>`).join("")
    : `<tr><td>${t("p.nomatch")}</td></tr>`;
  renderAssign(p).catch(report);
}

// --- assignment (supervisors, admins) ---------------------------------------------------------------------
function assigneeName(p) {
  if (p.assignee_id == null) return null;
  const known = state.assignees.get(p.district_code)?.find((u) => u.id === p.assignee_id);
  if (known) return `${known.name} (${known.role})`;
  return p.assignee_id === state.me?.id ? state.me.name : `${t("h.user")} #${p.assignee_id}`;
}

async function assigneesOf(district) {
  if (!state.assignees.has(district)) {
    state.assignees.set(district, (await getJson(`/districts/${encodeURIComponent(district)}/assignees`)).data);
  }
  return state.assignees.get(district);
}

async function renderAssign(p) {
  const box = $("assign");
  box.hidden = !MANAGERS.includes(state.me?.role) || !p.district_code;
  if (box.hidden) return;
  const users = await assigneesOf(p.district_code);
  if (state.current?.id !== p.id) return; // another patch was opened meanwhile
  const select = $("assignee");
  // after a conflict the patch is reloaded: keep the user the supervisor had picked, not the stored one
  const kept = state.keptAssignee?.patch === p.id ? state.keptAssignee.user : p.assignee_id;
  select.replaceChildren(new Option(t("as.pick"), ""),
    ...users.map((u) => new Option(`${u.name} (${u.role})`, u.id, false, u.id === kept)));
  const row = [...$("p-attrs").querySelectorAll("dt")].find((dt) => dt.textContent === t("a.assignee"));
  if (row) row.nextElementSibling.textContent = assigneeName(p); // now that the names are known
}

async function submitAssign(event) {
  event.preventDefault();
  const patch = state.current;
  const chosen = Number($("assignee").value);
  const msg = $("assign-msg");
  if (!patch || !chosen) { msg.textContent = t("as.pick"); return; }
  $("assign-save").disabled = true;
  try {
    const response = await request(`/patches/${patch.id}`, {
      method: "PATCH", raw: true, headers: { "If-Match": state.etag }, body: { assignee_id: chosen },
    });
    state.current = await response.json();
    state.etag = response.headers.get("ETag");
    state.keptAssignee = null;
    renderPatch(state.current);
    msg.textContent = t("as.done", { name: assigneeName(state.current) });
    await Promise.all([loadHistory(patch.id), loadPatches()]);
  } catch (err) {
    if (err instanceof ApiError && err.status === 412) {
      state.keptAssignee = { patch: patch.id, user: chosen };
      const fresh = await fetchPatch(patch.id);
      state.current = fresh.patch;
      state.etag = fresh.etag;
      renderPatch(fresh.patch);
      msg.textContent = t("as.conflict");
    } else msg.textContent = t("err") + err.message;
  } finally {
    $("assign-save").disabled = false;
  }
}

async function loadChips(id) {
  for (const which of ["before", "after"]) {
    const img = $(`chip-${which}`);
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    img.removeAttribute("src");
    blobUrl(`/patches/${id}/chips/${which}.png`).then((url) => {
      if (url && state.current?.id === id) img.src = url;
    });
  }
}

async function loadHistory(id) {
  // Opening a patch and saving a review both reload the history; an older, slower answer must not
  // overwrite a newer one, so only the latest request may render.
  const ticket = (state.historyTicket = (state.historyTicket || 0) + 1);
  const history = await getJson(`/patches/${id}/history`);
  if (state.current?.id !== id || ticket !== state.historyTicket) return;
  const who = (userId) => (userId == null ? t("h.system") : `${t("h.user")} #${userId}`);
  const items = [
    ...history.reviews.map((r) => ({ at: r.created_at, text: `${who(r.reviewer_id)}: ${t(`v.${r.verdict}`)}`
      + (r.note ? ` — ${r.note}` : ""), photos: r.photos })),
    ...history.data.filter((e) => e.action !== "reviewed").map((e) => ({ at: e.at,
      text: `${who(e.user_id)}: ${e.action}${e.reason ? ` — ${e.reason}` : ""}`, photos: [] })),
  ].sort((a, b) => b.at.localeCompare(a.at));
  $("p-history").innerHTML = items.length
    ? items.map((i) => `<li><time>${escape(i.at.slice(0, 16).replace("T", " "))}</time> ${escape(i.text)}`
      + (i.photos.length ? `<span class="thumbs">${i.photos.map(thumbSlot).join("")}</span>` : "") + "</li>").join("")
    : `<li class="muted">${t("h.empty")}</li>`;
  state.history = history;
  loadThumbs(id);
}

/** A placeholder for a field photo (``photo:<name>``) of the history; :func:`loadThumbs` fills it. */
function thumbSlot(ref) {
  const name = String(ref).replace(/^photo:/, "");
  return `<a class="thumb" data-photo="${escape(name)}" target="_blank" rel="noopener" title="${escape(t("h.photo"))}">`
    + `<img alt="${escape(t("h.photo"))}"></a>`;
}

/** Photos need the token, which an <img src> cannot send: fetch each as a blob URL (like the chips). */
function loadThumbs(id) {
  for (const url of state.thumbs.splice(0)) URL.revokeObjectURL(url);
  for (const link of $("p-history").querySelectorAll("a.thumb")) {
    blobUrl(`/patches/${id}/photos/${encodeURIComponent(link.dataset.photo)}`).then((url) => {
      if (!url) { link.classList.add("missing"); return; }
      if (state.current?.id !== id || !link.isConnected) { URL.revokeObjectURL(url); return; }
      state.thumbs.push(url);
      link.href = url;
      link.querySelector("img").src = url;
    });
  }
}

// --- the review form, drafts, conflicts ------------------------------------------------------------------
const draftKey = (id) => `soilwatch.draft.${id}`;

function formDraft() {
  const form = $("review");
  return { verdict: form.elements.verdict.value, note: form.elements.note.value, photos: state.photoRefs || [] };
}

function saveDraft() {
  if (!state.current) return;
  const draft = formDraft();
  if (draft.verdict || draft.note || draft.photos.length) sessionStorage.setItem(draftKey(state.current.id), JSON.stringify(draft));
  else sessionStorage.removeItem(draftKey(state.current.id));
}

function restoreDraft(id) {
  const form = $("review");
  const draft = JSON.parse(sessionStorage.getItem(draftKey(id)) || "null") || { verdict: "", note: "", photos: [] };
  form.elements.verdict.value = draft.verdict;
  form.elements.note.value = draft.note;
  form.elements.photos.value = "";
  state.photoRefs = draft.photos;
  renderPhotoRefs();
}

function renderPhotoRefs() {
  $("photo-refs").innerHTML = (state.photoRefs || [])
    .map((p) => `<li>📷 ${escape(p.filename)} <small>${t("r.uploaded")}</small></li>`).join("");
}

async function uploadPhotos(id) {
  const input = $("review").elements.photos;
  for (const file of input.files) {
    const body = new FormData();
    body.append("file", file);
    const photo = await request(`/patches/${id}/photos`, { method: "POST", body });
    state.photoRefs = [...(state.photoRefs || []), { ref: photo.ref, filename: photo.filename }];
    saveDraft();
  }
  input.value = ""; // uploaded once: a retry after a conflict sends the same references
  renderPhotoRefs();
}

async function submitReview(event) {
  event?.preventDefault();
  const patch = state.current;
  if (!patch || state.me?.role === "viewer") return;
  const msg = $("review-msg");
  const draft = formDraft();
  if (!draft.verdict) { msg.textContent = t("r.pick"); return; }
  msg.textContent = t("r.saving");
  $("save").disabled = true;
  try {
    await uploadPhotos(patch.id);
    const response = await request(`/patches/${patch.id}/reviews`, {
      method: "POST", raw: true, headers: { "If-Match": state.etag },
      body: { verdict: draft.verdict, note: draft.note || null, photos: state.photoRefs.map((p) => p.ref) },
    });
    state.current = await response.json();
    state.etag = response.headers.get("ETag");
    sessionStorage.removeItem(draftKey(patch.id));
    $("conflict").hidden = true;
    renderPatch(state.current);
    msg.textContent = t("r.saved");
    await Promise.all([loadHistory(patch.id), loadPatches()]);
  } catch (err) {
    saveDraft();
    if (err instanceof ApiError && err.status === 412) await showConflict(patch.id, draft);
    else msg.textContent = err.status === 403 ? t("r.denied") : t("err") + err.message;
  } finally {
    $("save").disabled = false;
  }
}

async function showConflict(id, mine) {
  const { patch: theirs, etag } = await fetchPatch(id);
  const history = await getJson(`/patches/${id}/history`);
  const last = history.reviews.at(-1);
  const box = $("conflict");
  box.innerHTML = `<h4>${t("c.title")}</h4><div class="versions">`
    + `<section class="theirs"><h5>${t("c.theirs")}</h5><dl>`
    + `<dt>${t("a.verdict")}</dt><dd>${escape(theirs.verdict ? t(`v.${theirs.verdict}`) : "–")}</dd>`
    + `<dt>${t("a.status")}</dt><dd>${escape(t(`st.${theirs.review_status}`))}</dd>`
    + (last ? `<dt>${t("r.note")}</dt><dd>${escape(last.note || "–")}</dd><dt>${t("c.by")}</dt>`
      + `<dd>${t("h.user")} #${escape(last.reviewer_id)}</dd><dt>${t("c.at")}</dt><dd>${escape(last.created_at.slice(0, 16).replace("T", " "))}</dd>` : "")
    + `</dl></section><section class="mine"><h5>${t("c.mine")}</h5><dl>`
    + `<dt>${t("a.verdict")}</dt><dd>${escape(t(`v.${mine.verdict}`))}</dd>`
    + `<dt>${t("r.note")}</dt><dd>${escape(mine.note || "–")}</dd></dl></section></div>`
    + `<p>${t("c.keep")}</p><button type="button" id="c-overwrite">${t("c.overwrite")}</button> `
    + `<button type="button" id="c-discard">${t("c.discard")}</button>`;
  box.hidden = false;
  box.scrollIntoView({ block: "start" });
  $("review-msg").textContent = "";
  $("c-overwrite").onclick = () => { state.etag = etag; state.current = theirs; renderPatch(theirs); submitReview(); };
  $("c-discard").onclick = () => {
    sessionStorage.removeItem(draftKey(id));
    state.photoRefs = [];
    state.current = theirs;
    state.etag = etag;
    box.hidden = true;
    renderPatch(theirs);
    restoreDraft(id);
    loadHistory(id);
    loadPatches();
  };
}

// --- exports ---------------------------------------------------------------------------------------------
function renderExports(container, filters) {
  container.innerHTML = `<span>${t("e.export")}:</span>`
    + FORMATS.map((f) => `<button type="button" data-format="${f}">${f.toUpperCase()}</button>`).join("")
    + `<label class="zh"><input type="checkbox"> ${t("e.zh")}</label><span class="export-msg" role="status"></span>`;
  container.onclick = async (event) => {
    const format = event.target.dataset?.format;
    if (!format) return;
    const zh = container.querySelector("input[type=checkbox]").checked;
    const params = { ...filters(), format, names: zh ? "zh" : "", encoding: zh && format === "shp" ? "gbk" : "" };
    const out = container.querySelector(".export-msg");
    try {
      out.textContent = t("e.done", { name: await download(`/exports/patches${query(params)}`) });
    } catch (err) {
      out.textContent = t("err") + err.message;
    }
  };
}

// --- views, keyboard, wiring -----------------------------------------------------------------------------
function showView(view) {
  for (const button of $("tabs").children) button.classList.toggle("active", button.dataset.view === view);
  $("mapview").hidden = view !== "map";
  $("sidebar").hidden = view !== "map";
  $("panel").hidden = view !== "map";
  $("statsview").hidden = view !== "stats";
  if (view === "stats") loadStats($("stats-filters"), $("chart"), $("stats-table")).catch(report);
  else state.map?.map.invalidateSize();
}

function report(err) { $("count").textContent = t("err") + err.message; }

function onKey(event) {
  if ((event.ctrlKey || event.metaKey) && event.key === "Enter") { submitReview(event); return; }
  const tag = event.target.tagName;
  if (["INPUT", "TEXTAREA", "SELECT"].includes(tag) || event.ctrlKey || event.metaKey || event.altKey) return;
  if ($("app").hidden || $("mapview").hidden) return;
  if (event.key === "j") step(1);
  else if (event.key === "k") step(-1);
  else if (["1", "2", "3", "4"].includes(event.key) && state.current) {
    $("verdicts").querySelectorAll("input")[Number(event.key) - 1].checked = true;
    saveDraft();
  } else return;
  event.preventDefault();
}

function wire() {
  applyText(document);
  whenUnauthorised(signOut);
  $("signin-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("token").value.trim()); });
  $("signout").addEventListener("click", () => signOut());
  $("lang").addEventListener("click", () => {
    setLang(getLang() === "en" ? "zh" : "en");
    if (!$("app").hidden) {
      if (state.zoneCollection) showZones(state.zoneCollection); // option labels name the kinds
      renderList();
      state.map.relabel();
      if (state.current) { renderPatch(state.current); renderPhotoRefs(); loadHistory(state.current.id); }
      renderExports($("list-exports"), () => listFilters());
      renderExports($("stats-exports"), () => statsQuery($("stats-filters")).exportFilters);
      if (!$("statsview").hidden) showView("stats");
    }
  });
  $("tabs").addEventListener("click", (e) => e.target.dataset.view && showView(e.target.dataset.view));
  $("filters").addEventListener("change", (e) => (e.target.name === "sort" ? renderList() : loadPatches().catch(report)));
  $("stats-filters").addEventListener("change", () => showView("stats"));
  for (const id of ["img-before", "img-after"]) $(id).addEventListener("change", showImagery);
  $("img-mode").addEventListener("change", (e) => state.map.setMode(e.target.value));
  $("review").addEventListener("submit", submitReview);
  $("assign-form").addEventListener("submit", submitAssign);
  $("review").addEventListener("input", saveDraft);
  document.addEventListener("keydown", onKey);
  if (token.get()) signIn(token.get());
}

wire();
