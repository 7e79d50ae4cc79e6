// The analysts' dashboard (docs/index-schema.md, Imaging episodes): reads /analytics/api only,
// draws plain SVG bars and tables. Every value is inserted as text, never as HTML.
"use strict";

const API = "/analytics/api";
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("micdr-analytics-token") || "";

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function filters() {
  const params = new URLSearchParams();
  for (const name of ["start", "end", "modality", "site", "days"]) {
    const value = $(name).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

async function ask(question, params) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const response = await fetch(`${API}/${question}?${params}`, { headers });
  const body = await response.json();
  if (!response.ok) {
    const issue = (body.issue && body.issue[0]) || {};
    throw new Error(issue.diagnostics || `HTTP ${response.status}`);
  }
  return body.rows;
}

function hours(minutes) {
  return minutes === null || minutes === undefined ? "—" : (minutes / 60).toFixed(1);
}

function percent(part, whole) {
  return whole ? `${((100 * part) / whole).toFixed(0)} %` : "—";
}

function fill(tableId, rows, cells) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren();
  if (!rows.length) {
    const tr = el("tr");
    const td = el("td", "No episodes in this selection.", "empty");
    td.colSpan = $(tableId).querySelectorAll("th").length;
    tr.append(td);
    body.append(tr);
    return;
  }
  for (const row of rows) {
    const tr = el("tr");
    for (const value of cells(row)) tr.append(el("td", value === null ? "—" : value));
    body.append(tr);
  }
}

// bars: [{label, value, alt?}]
function barChart(containerId, bars, unit) {
  const box = $(containerId);
  box.replaceChildren();
  if (!bars.length) return;
  const width = 640, rowH = 22, left = 150, height = bars.length * rowH + 10;
  const max = Math.max(...bars.map((b) => b.value || 0), 1);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `${bars.length} bars, ${unit}` });
  bars.forEach((b, i) => {
    const y = 5 + i * rowH;
    const w = ((b.value || 0) / max) * (width - left - 60);
    chart.append(svg("text", { x: 0, y: y + 14 }, b.label));
    chart.append(svg("rect", { x: left, y, width: Math.max(w, 1), height: rowH - 6,
      class: b.alt ? "bar-rect alt" : "bar-rect" }));
    chart.append(svg("text", { x: left + w + 4, y: y + 14 }, `${b.value ?? "—"} ${unit}`));
  });
  box.append(chart);
}

const RENDER = {
  volume(rows) {
    const months = new Map();
    for (const r of rows) months.set(r.month, (months.get(r.month) || 0) + r.episodes);
    barChart("volume-chart", [...months].map(([m, n]) => ({ label: m ?? "undated", value: n })), "exams");
    fill("volume-table", rows, (r) => [r.month, r.modality, r.performing_org_upi, r.episodes]);
  },
  turnaround(rows) {
    const bars = [];
    for (const r of rows) {
      bars.push({ label: `${r.modality ?? "?"} order→exam`, value: Number(hours(r.order_to_exam_avg)) || 0 });
      bars.push({ label: `${r.modality ?? "?"} exam→report`, value: Number(hours(r.exam_to_report_avg)) || 0, alt: true });
    }
    barChart("turnaround-chart", bars, "h");
    fill("turnaround-table", rows, (r) => [r.modality, r.episodes, hours(r.order_to_exam_avg),
      hours(r.exam_to_report_avg), hours(r.order_to_report_avg)]);
  },
  unreported(rows) {
    fill("unreported-table", rows, (r) => [r.modality, r.episodes]);
  },
  repeats(rows) {
    fill("repeats-table", rows, (r) => [r.procedure_code, r.episodes, r.repeats, percent(r.repeats, r.episodes)]);
  },
  amendments(rows) {
    fill("amendments-table", rows, (r) => [r.modality, r.reported, r.amended, percent(r.amended, r.reported)]);
  },
};

async function alerts() {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const response = await fetch(`${API}/alerts`, { headers });
  const body = await response.json();
  if (!response.ok) throw new Error((body.issue && body.issue[0].diagnostics) || `HTTP ${response.status}`);
  const rows = body.alerts.map((a) => ({ ...a, since: a.value }));
  fill("alerts-table", rows, (a) => [a.rule, a.key, a.status, a.modality, a.performing_org_upi, a.since]);
}

async function refresh() {
  const params = filters();
  $("state").textContent = "Loading…";
  $("state").className = "hint";
  try {
    const answers = await Promise.all(Object.keys(RENDER).map((q) => ask(q, params)));
    Object.keys(RENDER).forEach((q, i) => RENDER[q](answers[i]));
    await alerts();
    $("state").textContent = "Up to date.";
    document.body.dataset.loaded = "yes";
  } catch (error) {
    $("state").textContent = error.message;
    $("state").className = "hint error";
    document.body.dataset.loaded = "error";
  }
}

async function start() {
  const config = await (await fetch("/analytics/config.json")).json();
  if (config.auth.required) {
    $("access").hidden = false;
    $("token").value = token;
  }
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    token = $("token").value.trim();
    sessionStorage.setItem("micdr-analytics-token", token);
    refresh();
  });
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  if (!config.auth.required || token) refresh();
}

start();
