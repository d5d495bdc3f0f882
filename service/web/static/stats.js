// Statistics per district and month (GET /stats), a hand-drawn SVG bar chart, and exports of the period.
import { getJson, query } from "./api.js";
import { t } from "./i18n.js";

const SERIES = [["found", "#4e79a7"], ["suspected", "#f28e2b"], ["confirmed", "#c0392b"], ["closed", "#59a14f"]];
const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text = "") {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

/** Grouped bars: one group per row (month), one bar per series. */
export function drawChart(container, rows) {
  container.replaceChildren();
  if (!rows.length) { container.textContent = t("s.none"); return; }
  const width = 640, height = 260, left = 40, bottom = 40, top = 30;
  const peak = Math.max(1, ...rows.flatMap((r) => SERIES.map(([k]) => r[k])));
  const magnitude = 10 ** Math.floor(Math.log10(peak / 4));
  const tick = [1, 2, 5, 10].map((m) => m * magnitude).find((v) => v >= peak / 4 && Number.isInteger(v)) || Math.ceil(peak / 4);
  const max = tick * 4; // four whole-number grid steps
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": t("tab.stats"), class: "chart" });
  const plotH = height - bottom - top, groupW = (width - left - 10) / rows.length;
  const barW = Math.min(28, (groupW - 8) / SERIES.length);
  for (let i = 0; i <= 4; i += 1) {
    const y = top + plotH - (plotH * i) / 4;
    svg.append(el("line", { x1: left, x2: width - 10, y1: y, y2: y, class: "grid" }));
    svg.append(el("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, String(tick * i)));
  }
  rows.forEach((row, g) => {
    const x0 = left + g * groupW + (groupW - barW * SERIES.length) / 2;
    SERIES.forEach(([key, colour], s) => {
      const h = (plotH * row[key]) / max;
      const bar = el("rect", { x: x0 + s * barW, y: top + plotH - h, width: barW - 2, height: h, fill: colour });
      bar.append(el("title", {}, `${row.month || row.district_name || ""} ${t(`s.${key}`)}: ${row[key]}`));
      svg.append(bar);
    });
    svg.append(el("text", { x: left + g * groupW + groupW / 2, y: height - bottom + 16, "text-anchor": "middle" },
      row.month || row.district_name || row.district_code || t("s.total")));
  });
  SERIES.forEach(([key, colour], s) => {
    svg.append(el("rect", { x: left + s * 130, y: 6, width: 12, height: 12, fill: colour }));
    svg.append(el("text", { x: left + s * 130 + 16, y: 16 }, t(`s.${key}`)));
  });
  container.append(svg);
}

function table(target, rows, total) {
  const cols = [["district_name", "s.district"], ["found", "s.found"], ["suspected", "s.suspected"],
    ["reviewed", "s.reviewed"], ["confirmed", "s.confirmed"], ["closed", "s.closed"], ["area_mu", "s.area"],
    ["field_precision", "s.precision"]];
  const fmt = (key, value) => (value === null || value === undefined ? "–"
    : key === "area_mu" ? value.toFixed(1) : key === "field_precision" ? `${Math.round(value * 100)}%` : value);
  const head = `<tr>${cols.map(([, label]) => `<th>${t(label)}</th>`).join("")}</tr>`;
  const body = [...rows, { ...total, district_name: t("s.total") }]
    .map((r) => `<tr>${cols.map(([key]) => `<td>${escape(fmt(key, r[key] ?? (key === "district_name" ? r.district_code : null)))}</td>`).join("")}</tr>`)
    .join("");
  target.innerHTML = head + body;
}

export function escape(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

/** The stats form's values as the stats query and as the matching patch-export filters. */
export function statsQuery(form) {
  const data = Object.fromEntries(new FormData(form));
  return {
    stats: { district: data.district, period_start: data.period_start, period_end: data.period_end },
    exportFilters: { district: data.district, after_from: data.period_start, after_to: data.period_end },
  };
}

export async function loadStats(form, chart, tableEl) {
  const { stats } = statsQuery(form);
  const [byMonth, byDistrict] = await Promise.all([
    getJson(`/stats${query({ ...stats, group_by: "month" })}`),
    getJson(`/stats${query({ ...stats, group_by: "district" })}`),
  ]);
  const months = byMonth.data.filter((r) => r.month).sort((a, b) => a.month.localeCompare(b.month));
  drawChart(chart, months);
  table(tableEl, byDistrict.data, byDistrict.total);
}
