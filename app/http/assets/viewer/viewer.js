// miCDR imaging record viewer (docs/viewer.md). Plain JavaScript, no dependencies, no build step.
// It reads only the public FHIR API: one Patient search, then one search per imaging type by
// patient.identifier with _include (paging followed), and the _history of changed reports.
"use strict";

const ADDENDUM_OF = "/ext-di-addendum-of"; // the IG's extension; its canonical base is unpublished
const CHANGED_STATUSES = new Set(["amended", "corrected", "appended"]);
const WAITING_ORDER = new Set(["draft", "active", "on-hold"]);
const TOKEN_KEY = "micdr-viewer-token";
const PAGE_SIZE = 100;
const INDEX_ENTRY_TYPE = "application/fhir+json"; // the IG longitudinal index (R30, R31)

const state = {
  config: null,
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  requests: 0,
  episodes: [],
  // each search bumps it; an answer arriving for an older search is dropped, so a quick second
  // search cannot be overwritten by the first one's late results
  generation: 0,
};

// ---------- small DOM helpers (text only: data never becomes markup) ----------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else if (key in node && key !== "list") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (id) => document.getElementById(id);

function fact(list, term, ...value) {
  const parts = value.flat().filter((v) => v !== undefined && v !== null && v !== "");
  if (parts.length === 0) return;
  list.append(el("dt", { text: term }), el("dd", {}, ...parts));
}

// ---------- FHIR access ----------

class ApiError extends Error {
  constructor(status, detail, requestId) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
    this.requestId = requestId;
  }
}

async function api(url) {
  const headers = { Accept: "application/fhir+json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  state.requests += 1;
  let response;
  try {
    response = await fetch(url, { headers });
  } catch (err) {
    throw new ApiError(0, err.message);
  }
  if (!response.ok) {
    let detail = "";
    try {
      const outcome = await response.json();
      detail = (outcome.issue || []).map((i) => i.diagnostics || i.details?.text || i.code).join("; ");
    } catch (_) {
      detail = response.statusText;
    }
    throw new ApiError(response.status, detail, response.headers.get("X-Request-Id"));
  }
  return response.json();
}

function fhirUrl(path) {
  return `${state.config.fhirBase}/${path}`;
}

// A search with its paging followed: the matches and the included resources of every page.
async function searchAll(path) {
  const matches = [];
  const included = [];
  let url = fhirUrl(path);
  while (url) {
    const bundle = await api(url);
    for (const entry of bundle.entry || []) {
      if (!entry.resource) continue;
      (entry.search?.mode === "include" ? included : matches).push(entry.resource);
    }
    url = (bundle.link || []).find((l) => l.relation === "next")?.url || null;
  }
  return { matches, included };
}

function describeError(err) {
  const said = err.detail ? ` Server says: ${err.detail}` : "";
  const rid = err.requestId ? ` (request id ${err.requestId})` : "";
  if (err.status === 0) return `Cannot reach the server: ${err.message}. Check the network and try again.`;
  if (err.status === 401)
    return `Not signed in (HTTP 401): the server needs a valid bearer token. Paste one under “Access token” and search again.${said}`;
  if (err.status === 403)
    return `Access refused (HTTP 403): your token does not allow reading this record.${said}`;
  if (err.status === 404) return `Not found (HTTP 404): the server has no such record or address.${said}`;
  if (err.status >= 500)
    return `The server failed (HTTP ${err.status}). Try again in a moment; if it persists, tell the administrator${rid}.${said}`;
  return `The server refused the request (HTTP ${err.status}).${said}`;
}

// ---------- reading resources ----------

function refKey(reference) {
  // "Type/id", from a relative, absolute or versioned reference
  if (!reference || typeof reference !== "string") return null;
  const parts = reference.split("/_history/")[0].split("/");
  return parts.length >= 2 ? `${parts[parts.length - 2]}/${parts[parts.length - 1]}` : null;
}

const keyOf = (resource) => `${resource.resourceType}/${resource.id}`;

function codingText(coding) {
  return coding ? coding.display || coding.code || "" : "";
}

function conceptText(concept) {
  if (!concept) return "";
  return concept.text || (concept.coding || []).map(codingText).find((t) => t) || "";
}

function nameOf(resource, ref) {
  if (!resource) return ref?.display || ref?.reference || "";
  if (resource.resourceType === "Organization" || resource.resourceType === "Location")
    return resource.name || keyOf(resource);
  const name = (resource.name || [])[0];
  if (!name) return keyOf(resource);
  if (name.text) return name.text;
  return [...(name.prefix || []), ...(name.given || []), name.family].filter(Boolean).join(" ");
}

function dateOnly(value) {
  return value ? value.slice(0, 10) : "";
}

function when(value) {
  if (!value) return "";
  const d = new Date(value);
  if (Number.isNaN(d.getTime()) || value.length <= 10) return value;
  // the sender's local time as written; an instant in UTC says so
  return `${value.slice(0, 10)} ${value.slice(11, 16)}${value.endsWith("Z") ? " UTC" : ""}`;
}

function addendumTarget(report) {
  const ext = (report.extension || []).find((e) => typeof e.url === "string" && e.url.endsWith(ADDENDUM_OF));
  return ext ? refKey(ext.valueReference?.reference) : null;
}

function version(resource) {
  return Number.parseInt(resource.meta?.versionId || "1", 10) || 1;
}

// ---------- grouping into episodes ----------

function buildEpisodes(orders, studies, reports, documents) {
  const byKey = new Map();
  const episodes = [];
  const episodeOf = new Map(); // resource key -> episode
  const newEpisode = (anchorKey) => {
    const ep = { key: anchorKey, order: null, studies: [], reports: [], documents: [] };
    episodes.push(ep);
    return ep;
  };
  for (const order of orders) {
    const ep = newEpisode(keyOf(order));
    ep.order = order;
    episodeOf.set(keyOf(order), ep);
  }
  const via = (refs) => refs.map((r) => episodeOf.get(refKey(r.reference))).find(Boolean);
  for (const study of studies) {
    const ep = via(study.basedOn || []) || newEpisode(keyOf(study));
    ep.studies.push(study);
    episodeOf.set(keyOf(study), ep);
  }
  const addenda = [];
  for (const report of reports) {
    byKey.set(keyOf(report), report);
    if (addendumTarget(report)) {
      addenda.push(report);
      continue;
    }
    const ep = via(report.basedOn || []) || via(report.imagingStudy || []) || newEpisode(keyOf(report));
    ep.reports.push({ report, addenda: [], previous: null });
    episodeOf.set(keyOf(report), ep);
  }
  for (const addendum of addenda) {
    const ep = episodeOf.get(addendumTarget(addendum));
    const parent = ep?.reports.find((r) => keyOf(r.report) === addendumTarget(addendum));
    if (parent) parent.addenda.push(addendum);
    else {
      // its report is not in this record (or not visible): show it on its own
      const own = via(addendum.basedOn || []) || newEpisode(keyOf(addendum));
      own.reports.push({ report: addendum, addenda: [], previous: null });
    }
  }
  for (const doc of documents) {
    if ((doc.content || []).every((c) => c.attachment?.contentType === INDEX_ENTRY_TYPE)) continue;
    const related = (doc.context?.related || []).map((r) => episodeOf.get(refKey(r.reference))).find(Boolean);
    (related || newEpisode(keyOf(doc))).documents.push(doc);
  }
  for (const ep of episodes) {
    const study = ep.studies[0];
    const report = ep.reports[0]?.report;
    ep.date =
      study?.started || ep.order?.authoredOn || ep.order?.occurrenceDateTime ||
      report?.effectiveDateTime || report?.issued || ep.documents[0]?.date || "";
    ep.time = Date.parse(ep.date) || 0;
    ep.modalities = new Set();
    for (const s of ep.studies) {
      for (const m of s.modality || []) ep.modalities.add(m.code);
      for (const series of s.series || []) if (series.modality?.code) ep.modalities.add(series.modality.code);
    }
    if (ep.modalities.size === 0)
      for (const c of ep.order?.category || []) for (const cd of c.coding || []) if (cd.code) ep.modalities.add(cd.code);
    ep.bodySites = new Set();
    for (const s of ep.studies)
      for (const series of s.series || []) if (series.bodySite) ep.bodySites.add(codingText(series.bodySite));
    for (const site of ep.order?.bodySite || []) ep.bodySites.add(conceptText(site));
    ep.bodySites.delete("");
  }
  episodes.sort((a, b) => b.time - a.time || a.key.localeCompare(b.key));
  return episodes;
}

function episodeState(ep) {
  if (ep.studies.length === 0 && ep.reports.length === 0) {
    if (ep.order && !WAITING_ORDER.has(ep.order.status))
      return { code: "closed", label: `Order ${ep.order.status}; no study or report` };
    return { code: "pending", label: "Pending order: no study yet" };
  }
  if (ep.reports.length === 0) return { code: "awaiting-report", label: "Study done: report pending" };
  return { code: "reported", label: "Reported" };
}

function isChanged(entry) {
  return CHANGED_STATUSES.has(entry.report.status) || (entry.diff && entry.diff.length > 0);
}

// ---------- differences between two versions of a report ----------

function words(text) {
  return (text || "").split(/(\s+)/).filter((w) => w !== "");
}

// A word-level longest-common-subsequence diff: [["same"|"del"|"ins", text], ...].
function diffWords(before, after) {
  const a = words(before);
  const b = words(after);
  const table = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--)
    for (let j = b.length - 1; j >= 0; j--)
      table[i][j] = a[i] === b[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
  const out = [];
  const push = (kind, text) => {
    const last = out[out.length - 1];
    if (last && last[0] === kind) last[1] += text;
    else out.push([kind, text]);
  };
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      push("same", a[i]);
      i += 1;
      j += 1;
    }
    else if (table[i + 1][j] >= table[i][j + 1]) push("del", a[i++]);
    else push("ins", b[j++]);
  }
  while (i < a.length) push("del", a[i++]);
  while (j < b.length) push("ins", b[j++]);
  return out;
}

function formText(report) {
  return (report.presentedForm || []).map((f) => `${f.title || f.contentType || "attachment"} (${f.contentType || "?"})`).join(", ");
}

function diffReports(previous, current) {
  const changes = [];
  const field = (label, get) => {
    const before = get(previous) || "";
    const after = get(current) || "";
    if (before !== after) changes.push({ label, before, after });
  };
  field("Status", (r) => r.status);
  field("Issued", (r) => when(r.issued));
  field("Conclusion", (r) => r.conclusion);
  field("Coded conclusion", (r) => (r.conclusionCode || []).map(conceptText).join(", "));
  field("Attached report", formText);
  return changes;
}

// ---------- rendering ----------

function badge(status) {
  return el("span", { class: `badge badge-${status}`, text: status });
}

// Only web addresses become links: a `javascript:` or `data:` URL sent in a resource would
// otherwise run or render in this page's origin, where the token is. Relative URLs resolve
// against the FHIR base (an Attachment.url like `Binary/1`).
function webUrl(value) {
  if (typeof value !== "string" || value === "") return null;
  try {
    const url = new URL(value, new URL(`${state.config.fhirBase}/`, window.location.href));
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch (_) {
    return null;
  }
}

function attachmentView(attachment) {
  const title = attachment.title || attachment.contentType || "attachment";
  const type = attachment.contentType || "application/octet-stream";
  let href = webUrl(attachment.url) || "";
  let text = null;
  if (attachment.data) {
    const bytes = Uint8Array.from(atob(attachment.data), (c) => c.charCodeAt(0));
    href = URL.createObjectURL(new Blob([bytes], { type }));
    if (type.startsWith("text/")) text = new TextDecoder().decode(bytes);
  }
  const item = el("li", { class: "attachment" });
  if (href) {
    item.append(
      el("a", { href, target: "_blank", rel: "noopener", text: `Open ${title}` }),
      " · ",
      el("a", { href, download: title.replace(/[^\w.-]+/g, "_"), text: "Download" }),
      el("span", { class: "hint", text: ` ${type}` }),
    );
  } else if (attachment.url) {
    item.append(el("span", { text: `${title}: not a web address, not linked (${attachment.url})` }));
  } else item.append(el("span", { text: `${title} (no content)` }));
  if (text !== null) {
    const shown = type.startsWith("text/html")
      ? el("iframe", { sandbox: "", srcdoc: text, title: `Report text: ${title}`, class: "report-html" })
      : el("pre", { class: "report-text", text });
    item.append(el("details", {}, el("summary", { text: `Show ${title}` }), shown));
  }
  return item;
}

function reportPeople(report, included) {
  return [...(report.performer || []), ...(report.resultsInterpreter || [])]
    .map((ref) => nameOf(included.get(refKey(ref.reference)), ref))
    .filter(Boolean);
}

function changeView(entry) {
  const report = entry.report;
  const box = el("div", { class: "change", "data-testid": "change" });
  const status = CHANGED_STATUSES.has(report.status) ? report.status : "changed";
  const heading = `${status[0].toUpperCase()}${status.slice(1)} report`;
  if (!entry.previous) {
    box.append(
      el("p", { class: "change-title" }, el("strong", { text: heading }),
        ` — marked ${status} by the sender; this server holds no earlier version (version ${version(report)}).`),
    );
    return box;
  }
  box.append(
    el("p", { class: "change-title" }, el("strong", { text: heading }),
      ` — changed on ${when(report.meta?.lastUpdated)} (version ${version(entry.previous)} → ${version(report)}).`),
  );
  const list = el("dl", { class: "diff" });
  if (entry.diff.length === 0) list.append(el("dd", { text: "No difference in status, issue time, conclusion or attachments." }));
  for (const change of entry.diff) {
    const value = el("dd", { "data-field": change.label });
    if (change.label === "Conclusion") {
      for (const [kind, text] of diffWords(change.before, change.after)) {
        if (kind === "same") value.append(text);
        else value.append(el(kind, { title: kind === "del" ? "removed" : "added" },
          el("span", { class: "sr-only", text: kind === "del" ? "[removed: " : "[added: " }), text,
          el("span", { class: "sr-only", text: "]" })));
      }
    } else {
      value.append(el("del", { text: change.before || "(none)" }), " → ", el("ins", { text: change.after || "(none)" }));
    }
    list.append(el("dt", { text: change.label }), value);
  }
  box.append(el("details", { open: true }, el("summary", { text: "What changed from the previous version" }), list));
  return box;
}

function reportView(entry, included, addendum) {
  const report = entry.report;
  const card = el("article", { class: `report${addendum ? " addendum" : ""}`, "data-testid": addendum ? "addendum" : "report" });
  const title = addendum ? "Addendum" : conceptText(report.code) || "Report";
  card.append(el("h4", {}, title, " ", badge(report.status)));
  const facts = el("dl", { class: "facts" });
  fact(facts, "Issued", when(report.issued));
  fact(facts, "Reported by", reportPeople(report, included).join(", "));
  card.append(facts);
  if (!addendum && isChanged(entry)) card.append(changeView(entry));
  if (report.conclusion) card.append(el("p", { class: "conclusion", "data-testid": "conclusion" }, el("strong", { text: "Conclusion: " }), report.conclusion));
  const forms = report.presentedForm || [];
  if (forms.length) card.append(el("ul", { class: "attachments", "aria-label": "Report documents" }, forms.map(attachmentView)));
  for (const extra of entry.addenda || []) card.append(reportView({ report: extra }, included, true));
  return card;
}

function imageLink(study, included) {
  const uid = (study.identifier || []).find((i) => i.system === "urn:dicom:uid")?.value?.replace(/^urn:oid:/, "");
  const links = [];
  for (const ref of study.endpoint || []) {
    const endpoint = included.get(refKey(ref.reference));
    if (!webUrl(endpoint?.address)) continue;
    const kind = endpoint.connectionType?.code || "";
    const base = endpoint.address.replace(/\/+$/, "");
    // WADO-RS addresses are the service root (ImagingStudy.endpoint, R4): the study is below it
    const href = kind === "dicom-wado-rs" && uid ? `${base}/studies/${uid}` : webUrl(endpoint.address);
    const label = kind === "dicom-wado-rs" ? "Open images (WADO-RS)" : `Open images (${kind || "viewer"})`;
    links.push(el("a", { href, target: "_blank", rel: "noopener", class: "image-link", text: label }));
  }
  return links;
}

function studyView(study, ep, included) {
  const card = el("article", { class: "study", "data-testid": "study" });
  const modalities = [...new Set((study.modality || []).map((m) => m.code))].join(", ");
  card.append(el("h4", {}, `Study ${modalities}`.trim(), " ", badge(study.status || "unknown")));
  const facts = el("dl", { class: "facts" });
  fact(facts, "Date", when(study.started));
  fact(facts, "Body site", [...new Set((study.series || []).map((s) => codingText(s.bodySite)).filter(Boolean))].join(", "));
  fact(facts, "Series / images", `${study.numberOfSeries ?? (study.series || []).length} series, ${study.numberOfInstances ?? "?"} images`);
  const site = [study.location, ...(study.series || []).flatMap((s) => (s.performer || []).map((p) => p.actor))]
    .filter(Boolean).map((r) => nameOf(included.get(refKey(r.reference)), r)).filter(Boolean);
  const fallback = (ep.order?.performer || []).map((r) => nameOf(included.get(refKey(r.reference)), r));
  fact(facts, "Performed at", [...new Set(site.length ? site : fallback)].join(", "));
  fact(facts, "Images", imageLink(study, included));
  card.append(facts);
  return card;
}

function orderView(order, included) {
  const card = el("article", { class: "order", "data-testid": "order" });
  card.append(el("h4", {}, "Order ", badge(order.status)));
  const facts = el("dl", { class: "facts" });
  fact(facts, "Ordered", when(order.authoredOn));
  fact(facts, "Reason", [...(order.reasonCode || []).map(conceptText), ...(order.reasonReference || []).map((r) => r.display)].filter(Boolean).join(", "));
  fact(facts, "Requester", order.requester ? nameOf(included.get(refKey(order.requester.reference)), order.requester) : "");
  fact(facts, "Ordering site", (order.performer || []).map((r) => nameOf(included.get(refKey(r.reference)), r)).join(", "));
  const acc = (order.identifier || []).find((i) => (i.type?.coding || []).some((c) => c.code === "ACSN"));
  fact(facts, "Accession", acc?.value);
  card.append(facts);
  return card;
}

function episodeView(ep, included) {
  const status = episodeState(ep);
  const changed = ep.reports.some(isChanged);
  const title = conceptText(ep.order?.code) || conceptText(ep.reports[0]?.report.code) ||
    (ep.studies[0]?.description) || "Imaging episode";
  const item = el("li", {
    class: `episode state-${status.code}${changed ? " changed" : ""}`,
    "data-testid": "episode",
    "data-state": status.code,
  });
  item.append(
    el("h3", {}, el("time", { dateTime: ep.date, text: dateOnly(ep.date) || "undated" }), " ", title),
    el("p", { class: `state state-${status.code}`, "data-testid": "episode-state" }, status.label, changed ? " · report changed" : ""),
  );
  const parts = el("div", { class: "parts" });
  if (ep.order) parts.append(orderView(ep.order, included));
  for (const study of ep.studies) parts.append(studyView(study, ep, included));
  for (const entry of ep.reports) parts.append(reportView(entry, included, false));
  for (const doc of ep.documents) {
    parts.append(el("article", { class: "report", "data-testid": "document" },
      el("h4", {}, doc.description || conceptText(doc.type) || "Document", " ", badge(doc.status || "current")),
      el("ul", { class: "attachments" }, (doc.content || []).map((c) => attachmentView(c.attachment || {})))));
  }
  item.append(parts);
  ep.node = item;
  ep.state = status.code;
  ep.changed = changed;
  return item;
}

function fillSelect(select, values) {
  const keep = select.value;
  select.replaceChildren(el("option", { value: "", text: "All" }), ...[...values].sort().map((v) => el("option", { value: v, text: v })));
  select.value = values.has(keep) ? keep : "";
}

function renderTimeline(episodes, included) {
  const list = $("timeline");
  const fragment = document.createDocumentFragment();
  for (const ep of episodes) fragment.append(episodeView(ep, included));
  list.replaceChildren(fragment);
  if (episodes.length === 0) list.append(el("li", { class: "empty", text: "No imaging episodes on record for this patient." }));
  const modalities = new Set();
  const sites = new Set();
  for (const ep of episodes) {
    ep.modalities.forEach((m) => modalities.add(m));
    ep.bodySites.forEach((s) => sites.add(s));
  }
  fillSelect($("f-modality"), modalities);
  fillSelect($("f-bodysite"), sites);
  applyFilters();
}

function applyFilters() {
  const modality = $("f-modality").value;
  const site = $("f-bodysite").value;
  const from = $("f-from").value;
  const to = $("f-to").value;
  const status = $("f-status").value;
  let shown = 0;
  for (const ep of state.episodes) {
    const day = dateOnly(ep.date);
    const visible =
      (!modality || ep.modalities.has(modality)) &&
      (!site || ep.bodySites.has(site)) &&
      (!from || (day && day >= from)) &&
      (!to || (day && day <= to)) &&
      (!status || (status === "changed" ? ep.changed : ep.state === status));
    ep.node.hidden = !visible;
    if (visible) shown += 1;
  }
  const total = state.episodes.length;
  $("summary").textContent = shown === total
    ? `${total} imaging episode${total === 1 ? "" : "s"}, newest first.`
    : `Showing ${shown} of ${total} imaging episodes (filtered).`;
}

// ---------- flows ----------

function setStatus(text, busy) {
  $("status").textContent = text;
  $("main").setAttribute("aria-busy", busy ? "true" : "false");
}

function showError(err) {
  setStatus("", false);
  const box = $("error");
  box.textContent = describeError(err);
  box.dataset.status = String(err.status);
  box.hidden = false;
  if (err.status === 401) {
    $("access").hidden = false;
    $("token").focus();
  }
}

function clearMessages() {
  $("error").hidden = true;
  $("error").textContent = "";
  $("matches").hidden = true;
}

function patientLabel(patient) {
  return `${nameOf(patient)} · born ${patient.birthDate || "?"} · ${patient.gender || ""}`.trim();
}

// The identifier the imaging searches name the patient by: the one searched for, else the
// patient's HCN, else one of its MRNs in a configured system.
function searchIdentifier(patient, preferred) {
  const ids = (patient.identifier || []).filter((i) => i.system && i.value);
  if (preferred && ids.some((i) => i.system === preferred.system && i.value === preferred.value)) return preferred;
  const known = state.config.identifierSystems.map((s) => s.system);
  for (const system of known) {
    const found = ids.find((i) => i.system === system);
    if (found) return found;
  }
  return ids[0] || null;
}

async function findPatients(query, preferred) {
  const generation = ++state.generation;
  clearMessages();
  $("results").hidden = true;
  setStatus("Searching for the patient…", true);
  let found;
  try {
    found = await searchAll(`Patient?${query}&_count=50`);
  } catch (err) {
    if (generation === state.generation) showError(err);
    return;
  }
  if (generation !== state.generation) return;
  const patients = found.matches;
  if (patients.length === 0) {
    setStatus("No patient matches this search. Check the number, or search by name and birth date.", false);
    return;
  }
  if (patients.length === 1) {
    await openPatient(patients[0], preferred);
    return;
  }
  setStatus(`${patients.length} patients match.`, false);
  $("match-list").replaceChildren(
    ...patients.map((p) => el("li", {},
      el("button", { type: "button", class: "match", onclick: () => openPatient(p, preferred) },
        el("strong", { text: nameOf(p) }),
        ` born ${p.birthDate || "?"}, ${p.gender || "gender unknown"}`,
        el("span", { class: "hint", text: ` ${(p.identifier || []).map((i) => i.value).join(", ")}` })))),
  );
  $("matches").hidden = false;
  $("match-list").querySelector("button")?.focus();
}

async function openPatient(patient, preferred) {
  const generation = ++state.generation;
  const current = () => generation === state.generation;
  clearMessages();
  delete document.body.dataset.painted;
  const id = searchIdentifier(patient, preferred);
  if (!id) {
    setStatus("This patient has no identifier to search the imaging record by.", false);
    return;
  }
  state.requests = 0;
  const who = `patient.identifier=${encodeURIComponent(`${id.system}|${id.value}`)}&_count=${PAGE_SIZE}`;
  setStatus(`Loading the imaging record of ${nameOf(patient)}…`, true);
  const started = performance.now();
  let orders, studies, reports, documents;
  try {
    [orders, studies, reports, documents] = await Promise.all([
      searchAll(`ServiceRequest?${who}&_include=ServiceRequest:requester&_include=ServiceRequest:performer`),
      searchAll(`ImagingStudy?${who}&_include=ImagingStudy:endpoint&_include=ImagingStudy:performer`),
      searchAll(`DiagnosticReport?${who}&_include=DiagnosticReport:performer&_include=DiagnosticReport:results-interpreter`),
      // documents sent as such; the server's own index entries point at the resources above
      searchAll(`DocumentReference?${who}&contenttype:not=${encodeURIComponent(INDEX_ENTRY_TYPE)}`),
    ]);
  } catch (err) {
    if (current()) showError(err);
    return;
  }
  if (!current()) return;
  const included = new Map();
  for (const r of [orders, studies, reports, documents].flatMap((s) => [...s.matches, ...s.included])) included.set(keyOf(r), r);
  const episodes = buildEpisodes(orders.matches, studies.matches, reports.matches, documents.matches);
  try {
    await loadPreviousVersions(episodes);
  } catch (err) {
    if (current()) showError(err);
    return;
  }
  if (!current()) return;
  const arrived = performance.now();
  state.episodes = episodes;
  $("patient-h").textContent = nameOf(patient);
  const facts = $("patient-facts");
  facts.replaceChildren();
  fact(facts, "Born", patient.birthDate);
  fact(facts, "Gender", patient.gender);
  for (const ident of patient.identifier || []) {
    const known = state.config.identifierSystems.find((s) => s.system === ident.system);
    fact(facts, known ? known.kind : ident.system, ident.value);
  }
  renderTimeline(episodes, included);
  $("results").hidden = false;
  void document.body.offsetHeight; // layout is part of rendering
  const rendered = performance.now();
  const stats = {
    episodes: episodes.length,
    requests: state.requests,
    loadMs: Math.round(arrived - started),
    renderMs: Math.round((rendered - arrived) * 10) / 10,
  };
  window.viewerStats = stats;
  // the first frame painted after the data arrived (a measurement for the tests and the docs)
  requestAnimationFrame(() => setTimeout(() => {
    stats.paintMs = Math.round((performance.now() - arrived) * 10) / 10;
    document.body.dataset.painted = "true";
  }));
  setStatus(`Loaded ${stats.episodes} episodes with ${stats.requests} requests in ${stats.loadMs} ms; drawn in ${stats.renderMs} ms.`, false);
  $("results").focus();
}

// The version before each changed report, from its _history (only reports past version 1).
async function loadPreviousVersions(episodes) {
  const pending = episodes.flatMap((ep) => ep.reports).filter((e) => version(e.report) > 1);
  const queue = [...pending];
  const worker = async () => {
    while (queue.length) {
      const entry = queue.shift();
      const bundle = await api(fhirUrl(`DiagnosticReport/${entry.report.id}/_history`));
      const older = (bundle.entry || []).map((e) => e.resource).filter((r) => r && version(r) < version(entry.report));
      older.sort((a, b) => version(b) - version(a));
      entry.previous = older[0] || null;
      entry.diff = entry.previous ? diffReports(entry.previous, entry.report) : [];
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

// ---------- start ----------

async function start() {
  try {
    const response = await fetch("/viewer/config.json");
    state.config = await response.json();
  } catch (err) {
    showError(new ApiError(0, "the viewer's configuration could not be read"));
    return;
  }
  const select = $("id-system");
  select.replaceChildren(...state.config.identifierSystems.map((s) => el("option", { value: s.system, text: s.label })));
  if (state.config.auth.required) {
    $("access").hidden = false;
    $("issuer").textContent = state.config.auth.issuer || "the configured issuer";
    $("token-state").textContent = state.token ? "A token is set for this tab." : "No token set.";
  }
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    $("token").value = "";
    sessionStorage.setItem(TOKEN_KEY, state.token);
    $("token-state").textContent = state.token ? "A token is set for this tab." : "No token set.";
  });
  $("forget-token").addEventListener("click", () => {
    state.token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    $("token-state").textContent = "No token set.";
  });
  $("by-identifier").addEventListener("submit", (event) => {
    event.preventDefault();
    const system = $("id-system").value;
    const value = $("id-value").value.trim();
    findPatients(`identifier=${encodeURIComponent(`${system}|${value}`)}`, { system, value });
  });
  $("by-name").addEventListener("submit", (event) => {
    event.preventDefault();
    const parts = [`family=${encodeURIComponent($("family").value.trim())}`, `birthdate=${encodeURIComponent($("birthdate").value)}`];
    const given = $("given").value.trim();
    if (given) parts.push(`given=${encodeURIComponent(given)}`);
    findPatients(parts.join("&"), null);
  });
  $("filters").addEventListener("input", applyFilters);
  $("filters").addEventListener("reset", () => setTimeout(applyFilters));
  $("print").addEventListener("click", () => window.print());
  document.body.dataset.ready = "true";
}

start();
