// The Leaflet map: before/after imagery tiles with a swipe, district boundaries, priority zones, projects and patches.
import { blobUrl, token } from "./api.js";
import { t } from "./i18n.js";
import { escape } from "./stats.js";

/* global L */
export const CATEGORY_COLOURS = {
  suspected_unapproved: "#d7301f", suspected_out_of_bounds: "#f28e2b", suspected_relocated: "#8e5ab5",
  compliant: "#2e9d4a", too_small: "#8c8c8c",
};
/** Priority zones (重点监管区域) by kind: outlines only, so the imagery and the patches stay readable. */
export const ZONE_COLOURS = {
  water_source: "#0077c8", ecological_red_line: "#c2185b", nature_reserve: "#2e7d32", river_corridor: "#00838f",
  steep_slope: "#8d6e63", geohazard: "#ef6c00", other: "#6a1b9a",
};
const VERDICT_COLOURS = {
  confirmed_violation: "#7a0000", compliant: "#1b7837", not_construction: "#2166ac", false_detection: "#555555",
};

// Tiles need the Authorization header, which an <img src> cannot send: fetch them and show a blob URL.
const AuthTileLayer = L.TileLayer.extend({
  createTile(coords, done) {
    const img = document.createElement("img");
    img.alt = "";
    img.setAttribute("role", "presentation");
    fetch(this.getTileUrl(coords), { headers: { Authorization: `Bearer ${token.get()}` } })
      .then((r) => (r.status === 200 ? r.blob() : null))
      .then((blob) => {
        if (!blob) { done(null, img); return; }
        img.onload = () => { URL.revokeObjectURL(img.src); done(null, img); };
        img.onerror = () => done(new Error("tile"), img);
        img.src = URL.createObjectURL(blob);
      })
      .catch((err) => done(err, img));
    return img;
  },
});

function patchStyle(props, selected) {
  const status = props.review_status;
  const reviewed = status === "reviewed" || status === "closed";
  return {
    color: selected ? "#00e5ff" : reviewed ? VERDICT_COLOURS[props.verdict] || "#222" : "#ffeb3b",
    weight: selected ? 4 : reviewed ? 3 : 2,
    dashArray: reviewed || selected ? null : "5 4",
    fillColor: CATEGORY_COLOURS[props.category] || "#888",
    fillOpacity: selected || status === "closed" ? 0.08 : 0.3, // the selected one: see the imagery
  };
}

export class ReviewMap {
  constructor(element, { onPick }) {
    this.map = L.map(element, { maxZoom: 21, fadeAnimation: false }).setView([39.5, 117.2], 9);
    this.map.attributionControl.setPrefix(false);
    for (const [name, z] of [["beforeImg", 210], ["afterImg", 220]]) this.map.createPane(name).style.zIndex = z;
    this.onPick = onPick;
    this.selected = null;
    this.imagery = { before: null, after: null };
    this.mode = "swipe";
    this.ratio = 0.5;
    this.districts = L.geoJSON(null, { style: { color: "#1f5fbf", weight: 2, dashArray: "8 6", fill: false } });
    this.zones = L.geoJSON(null, {
      style: (f) => ({ color: ZONE_COLOURS[f.properties.kind] || ZONE_COLOURS.other, weight: 2, dashArray: "10 4 2 4",
        fillColor: ZONE_COLOURS[f.properties.kind] || ZONE_COLOURS.other, fillOpacity: 0.06 }),
      onEachFeature: (f, layer) => layer.bindTooltip(zoneLabel(f.properties), { sticky: true }),
    });
    this.projects = L.geoJSON(null, {
      style: (f) => ({ color: "#1a7f37", weight: 1.5, fillColor: "#4caf50", fillOpacity: 0.12,
        dashArray: f.properties.vector_type === "schematic" ? "4 4" : null }),
      onEachFeature: (f, layer) => layer.bindTooltip(escape(`${f.properties.name} (${f.properties.code})`), { sticky: true }),
    });
    this.patches = L.geoJSON(null, {
      style: (f) => patchStyle(f.properties, f.properties.id === this.selected),
      onEachFeature: (f, layer) => {
        layer.bindTooltip(escape(`${f.properties.patch_code} · ${t(`cat.${f.properties.category}`)}`), { sticky: true });
        layer.on("click", () => this.onPick(f.properties.id));
      },
    });
    for (const layer of [this.districts, this.zones, this.projects, this.patches]) layer.addTo(this.map);
    this.layerControl = L.control.layers(null, {}, { collapsed: false }).addTo(this.map);
    this.legend = L.control({ position: "bottomright" });
    this.legend.onAdd = () => L.DomUtil.create("div", "legend");
    this.legend.addTo(this.map);
    this.swipe = this.makeSwipe(element);
    this.map.on("move zoom resize", () => this.clip());
    this.relabel();
  }

  relabel() {
    const control = this.layerControl;
    for (const layer of [this.patches, this.projects, this.zones, this.districts]) control.removeLayer(layer);
    control.addOverlay(this.patches, t("layer.patches"));
    control.addOverlay(this.projects, t("layer.projects"));
    control.addOverlay(this.zones, t("layer.zones"));
    control.addOverlay(this.districts, t("layer.districts"));
    const rows = Object.entries(CATEGORY_COLOURS)
      .map(([code, colour]) => `<div><i style="background:${colour}"></i>${t(`cat.${code}`)}</div>`).join("");
    // Zone kinds only when the layer has some: most districts have a few kinds, not all seven.
    const kinds = new Set();
    this.zones.eachLayer((layer) => kinds.add(layer.feature.properties.kind));
    const zoneRows = [...kinds].sort().map((kind) => `<div class="zone-kind" data-kind="${escape(kind)}">`
      + `<i class="zone" style="border-color:${ZONE_COLOURS[kind] || ZONE_COLOURS.other}"></i>${escape(t(`zone.${kind}`))}</div>`)
      .join("");
    this.legend.getContainer().innerHTML = `<strong>${t("legend.title")}</strong>${rows}`
      + `<div><i class="dash"></i>${t("legend.unreviewed")}</div><div><i class="solid"></i>${t("legend.reviewed")}</div>`
      + (zoneRows ? `<strong>${t("legend.zones")}</strong>${zoneRows}` : "");
    this.zones.eachLayer((layer) => layer.setTooltipContent(zoneLabel(layer.feature.properties)));
    this.patches.eachLayer((layer) => layer.setTooltipContent(
      `${layer.feature.properties.patch_code} · ${t(`cat.${layer.feature.properties.category}`)}`));
    this.labelSwipe();
  }

  makeSwipe(element) {
    const bar = L.DomUtil.create("div", "swipe", element);
    bar.innerHTML = '<span class="swipe-label left"></span><span class="swipe-handle" title="⇆"></span>'
      + '<span class="swipe-label right"></span>';
    L.DomEvent.disableClickPropagation(bar);
    const move = (event) => {
      const rect = element.getBoundingClientRect();
      this.ratio = Math.min(0.98, Math.max(0.02, (event.clientX - rect.left) / rect.width));
      this.clip();
    };
    bar.addEventListener("pointerdown", (event) => {
      bar.setPointerCapture(event.pointerId);
      this.map.dragging.disable();
      bar.addEventListener("pointermove", move);
    });
    bar.addEventListener("pointerup", (event) => {
      bar.releasePointerCapture(event.pointerId);
      bar.removeEventListener("pointermove", move);
      this.map.dragging.enable();
    });
    return bar;
  }

  labelSwipe() {
    const label = (which) => {
      const row = this.imagery[which];
      return row ? `${t(`img.${which}`)} ${row.acquired_on}` : "";
    };
    this.swipe.querySelector(".left").textContent = label("before");
    this.swipe.querySelector(".right").textContent = label("after");
  }

  /** Show ``before``/``after`` imagery rows (or null) as tile layers. */
  setImagery(before, after) {
    for (const which of ["before", "after"]) {
      const row = which === "before" ? before : after;
      const old = this[`${which}Layer`];
      if (old && this.imagery[which]?.id === row?.id) continue;
      if (old) this.map.removeLayer(old);
      this.imagery[which] = row;
      this[`${which}Layer`] = row ? this.tileLayer(row, `${which}Img`).addTo(this.map) : null;
    }
    this.setMode(this.mode);
  }

  tileLayer(row, pane) {
    const [[w, s], [e, n]] = bboxOf(row.footprint);
    const lat = (s + n) / 2;
    const res = Math.max(row.resolution_m || 1, 0.1);
    const native = Math.min(21, Math.max(10, Math.ceil(Math.log2((156543.03 * Math.cos((lat * Math.PI) / 180)) / res))));
    return new AuthTileLayer(`/api/v1/map/imagery/${row.id}/tiles/{z}/{x}/{y}.png`, {
      pane, bounds: L.latLngBounds([s, w], [n, e]), minZoom: 8, maxNativeZoom: native, maxZoom: 21,
      updateWhenZooming: false, keepBuffer: 1,
      attribution: `${row.filename} (${row.acquired_on})`,
    });
  }

  setMode(mode) {
    this.mode = mode;
    const show = { before: mode !== "after", after: mode !== "before" };
    for (const which of ["before", "after"]) {
      const pane = this.map.getPane(`${which}Img`);
      pane.style.display = show[which] ? "" : "none";
    }
    this.swipe.hidden = mode !== "swipe" || !this.imagery.before || !this.imagery.after;
    this.labelSwipe();
    this.clip();
  }

  clip() {
    const pane = this.map.getPane("afterImg");
    if (this.mode !== "swipe" || this.swipe.hidden) { pane.style.clip = ""; return; }
    const size = this.map.getSize();
    const nw = this.map.containerPointToLayerPoint([0, 0]);
    const se = this.map.containerPointToLayerPoint(size);
    const x = nw.x + size.x * this.ratio;
    pane.style.clip = `rect(${nw.y}px, ${se.x}px, ${se.y}px, ${x}px)`;
    this.swipe.style.left = `${this.ratio * 100}%`;
  }

  setLayer(name, collection) {
    const layer = this[name];
    layer.clearLayers();
    if (collection) layer.addData(collection);
    if (name === "zones") { layer.bringToBack(); this.relabel(); } // the legend lists the kinds present
  }

  select(id) {
    this.selected = id;
    this.patches.setStyle((f) => patchStyle(f.properties, f.properties.id === id));
    this.patches.eachLayer((layer) => { if (layer.feature.properties.id === id) layer.bringToFront(); });
  }

  zoomTo(bbox) {
    const [w, s, e, n] = bbox;
    this.map.fitBounds([[s, w], [n, e]], { padding: [60, 60], maxZoom: 18 });
  }

  fitLayers() {
    for (const layer of [this.patches, this.districts]) {
      const bounds = layer.getBounds();
      if (bounds.isValid()) { this.map.fitBounds(bounds, { padding: [30, 30], maxZoom: 17 }); return; }
    }
  }
}

/** "于桥水库水源保护区 · 水源保护区 +50": a zone's name, kind and the priority it adds (HTML-escaped: names come
 * from imported files). */
export function zoneLabel(props) {
  return escape(`${props.name} · ${t(`zone.${props.kind}`)} +${props.weight}`);
}

function bboxOf(geometry) {
  let w = Infinity, s = Infinity, e = -Infinity, n = -Infinity;
  const walk = (c) => {
    if (typeof c[0] === "number") { w = Math.min(w, c[0]); e = Math.max(e, c[0]); s = Math.min(s, c[1]); n = Math.max(n, c[1]); }
    else c.forEach(walk);
  };
  walk(geometry.coordinates);
  return [[w, s], [e, n]];
}

export { blobUrl };
