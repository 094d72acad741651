// statecast dashboard: plain JS, no build step. Hash routes:
//   #/                series list, new series, upload; every stream, and readings for many
//   #/series/ID       history + forecast bands, models, train form, streams
//   #/jobs/ID         live progress bar and loss curve of a training job
//   #/streams/ID      a stream's readings, next-step forecast and live accuracy
"use strict";

const KEY_STORAGE = "statecast.apiKey";
const POLL_INTERVAL_MS = 1000;
const STREAM_POLL_MS = 2000;
const TOAST_MS = 5000;
const DEFAULT_HORIZON = 96;
// A long history opens on its last week (and the forecast); double-click shows it all.
const INITIAL_VIEW_DAYS = 7;
const DAY_MS = 86400 * 1000;
const LEVELS = [80, 95];
const FREQS = ["15min", "30min", "h", "D"];
const FINAL_STATUSES = ["succeeded", "failed", "cancelled"];
// Most readings POST /v1/streams/readings takes in one request.
const MAX_BULK_READINGS = 50000;
// The spec's defaults (app/ml/spec.py ModelSpec); blank number fields are left to the server.
const SPEC_FIELDS = [
  { name: "cell", kind: "select", options: ["lstm", "gru", "simple_rnn"], value: "gru" },
  { name: "units", kind: "int", value: 16 },
  { name: "layers", kind: "int", value: 1 },
  { name: "epochs", kind: "int", value: 40 },
  { name: "horizon", kind: "int", value: "", placeholder: "one day" },
  { name: "window", kind: "int", value: "", placeholder: "one day" },
  { name: "deseasonalize", kind: "select", options: ["mstl", "none"], value: "mstl" },
  { name: "calendar", kind: "select", options: ["auto", "on", "off"], value: "auto" },
  { name: "stateful", kind: "select", options: ["auto", "on", "off"], value: "auto" },
  { name: "bidirectional", kind: "bool", value: false },
  { name: "auto", kind: "bool", value: false },
  { name: "budget_s", kind: "int", value: "", placeholder: "600", advanced: true },
  { name: "loss", kind: "select", options: ["mae", "mse"], value: "mae", advanced: true },
  { name: "dropout", kind: "float", value: 0, advanced: true },
  { name: "patience", kind: "int", value: 8, advanced: true },
  { name: "batch_size", kind: "int", value: 64, advanced: true },
  { name: "learning_rate", kind: "float", value: 0.001, advanced: true },
  { name: "seed", kind: "int", value: 0, advanced: true },
  { name: "chunk", kind: "int", value: "", placeholder: "window", advanced: true },
  { name: "validation_fraction", kind: "float", value: 0.1, advanced: true },
  { name: "test_fraction", kind: "float", value: 0.1, advanced: true },
];
// Three-way choices: "auto" leaves the field to the server's frequency-dependent default.
const TRISTATE = { auto: undefined, on: true, off: false };
// The 80% band in the forecast's blue, the 95% band in a paler cyan: told apart at a glance.
const COLORS = { history: "#334155", forecast: "#2563eb", val: "#f97316",
  band: { 80: "37, 99, 235", 95: "103, 232, 249" },
  covariates: ["#b45309", "#047857", "#7c3aed", "#be123c"] };
// Share of the series chart's height the covariates' panel takes, under the forecast.
const COVARIATE_PANEL = 0.3;
const PLOT_CONFIG = { responsive: true, displaylogo: false };

// ---- small helpers ------------------------------------------------------------------------

const $ = (selector, root = document) => root.querySelector(selector);

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function fmt(value, digits = 4) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  if (!Number.isFinite(value)) return String(value);
  if (Math.abs(value) >= 1e5) return value.toFixed(0);
  return Number(value.toPrecision(digits)).toString();
}

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

// Timestamps are UTC throughout; minutes are the finest grid a series has.
const fmtTs = (ts) => (ts ? ts.slice(0, 16).replace("T", " ") : "–");
// A UTC timestamp as the wall-clock time of the series' zone ("2024-03-31 02:00:00"), so that the
// daily profile stays where it is across a daylight-saving change.
function wallClock(zone) {
  if (!zone || zone === "UTC") return (ts) => ts;
  const format = new Intl.DateTimeFormat("sv-SE", { timeZone: zone, year: "numeric", month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  return (ts) => format.format(new Date(Date.parse(ts)));
}
const badge = (status) => h("span", { class: `badge ${status}` }, status);

// Good news fades; an error stays until it is dismissed (showError puts it beside what failed).
function toast(message, isError = false) {
  const el = $("#toast");
  el.className = isError ? "error" : "";
  el.replaceChildren(h("span", {}, message),
    isError ? h("button", { type: "button", class: "link dismiss", "aria-label": "Dismiss",
      onclick: () => { el.hidden = true; } }, "×") : null);
  el.hidden = false;
  clearTimeout(toast.timer);
  if (!isError) toast.timer = setTimeout(() => { el.hidden = true; }, TOAST_MS);
}

// An error shown right after `where` (the form or button that failed), until dismissed or
// replaced by the next error there; clearError(where) removes it when a retry succeeds.
function showError(where, message) {
  clearError(where);
  const box = h("div", { class: "inline-error", role: "alert" },
    h("span", {}, message),
    h("button", { type: "button", class: "link dismiss", "aria-label": "Dismiss",
      onclick: () => box.remove() }, "×"));
  where.after(box);
  return box;
}

function clearError(where) {
  const next = where.nextElementSibling;
  if (next && next.classList.contains("inline-error")) next.remove();
}

// A chart, or in its place a sentence saying why there is nothing to draw yet.
function chartOrSentence(chart, sentenceEl, sentence) {
  chart.hidden = Boolean(sentence);
  sentenceEl.hidden = !sentence;
  sentenceEl.textContent = sentence || "";
}

// ---- the API key and calls ----------------------------------------------------------------

const getKey = () => sessionStorage.getItem(KEY_STORAGE);

class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// One readable line from problem+json: the detail and each field at fault with its value.
function problemMessage(status, body) {
  if (!body || typeof body !== "object") return `HTTP ${status}`;
  let line = body.detail || body.title || `HTTP ${status}`;
  const errors = Array.isArray(body.errors) ? body.errors.slice(0, 5) : [];
  if (errors.length) {
    line += " — " + errors.map((e) => {
      const row = e.row !== undefined ? ` (row ${e.row})` : "";
      return `${e.field}${row} = ${JSON.stringify(e.value)}: ${e.message}`;
    }).join("; ");
  }
  return line;
}

async function api(path, { method = "GET", json, body, headers = {}, signal } = {}) {
  const init = { method, signal, headers: { Authorization: `Bearer ${getKey()}`, ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    if (response.status === 401) askForKey("That key was refused; enter a valid key.");
    throw new ApiError(response.status, problemMessage(response.status, data), data);
  }
  return data;
}

function askForKey(message = "") {
  const dialog = $("#key-dialog");
  $("#key-error").textContent = message;
  $("#key-error").hidden = !message;
  if (!dialog.open) dialog.showModal();
  $("#key-input").focus();
}

function showKeyLabel() {
  const key = getKey();
  $("#key-label").textContent = key ? `key ${key.slice(0, 8)}…` : "no key";
}

$("#key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("#key-input").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORAGE, key);
  try {
    await api("/v1/series?limit=1");
  } catch (error) {
    sessionStorage.removeItem(KEY_STORAGE);
    $("#key-error").textContent = error.message;
    $("#key-error").hidden = false;
    return;
  }
  $("#key-input").value = "";
  $("#key-dialog").close();
  showKeyLabel();
  route();
});
$("#key-dialog").addEventListener("cancel", (event) => { if (!getKey()) event.preventDefault(); });
$("#change-key").addEventListener("click", () => askForKey());

// ---- routing ------------------------------------------------------------------------------

let disposers = [];

function onLeave(fn) { disposers.push(fn); }

function setCrumbs(...parts) {
  $("#crumbs").replaceChildren(...parts.flatMap((part, i) => [i ? " / " : "", part]));
}

async function route() {
  for (const dispose of disposers) dispose();
  disposers = [];
  const view = $("#view");
  view.replaceChildren();
  if (!getKey()) {
    askForKey();
    return;
  }
  const path = location.hash.replace(/^#/, "") || "/";
  const match = path.match(/^\/(series|jobs)\/(\d+)$|^\/streams\/([A-Za-z0-9_.:-]+)$/);
  try {
    if (path === "/keys") await keysView(view);
    else if (!match) await seriesListView(view);
    else if (match[1] === "series") await seriesView(view, Number(match[2]));
    else if (match[1] === "jobs") await jobView(view, Number(match[2]));
    else await streamView(view, decodeURIComponent(match[3]));
  } catch (error) {
    view.append(h("section", { class: "card" }, h("h2", {}, "Could not load this page"),
      h("p", { class: "error" }, error.message), h("a", { href: "#/" }, "Back to the series")));
  }
}

window.addEventListener("hashchange", route);

// ---- keys ---------------------------------------------------------------------------------

// The keys of this key's tenant: create one (shown once), revoke one. Rotating a key without
// downtime is create, deploy, revoke (docs/operations.md).
async function keysView(view) {
  setCrumbs(h("a", { href: "#/" }, "Series"), "Keys");
  const list = await api("/v1/keys");
  const rows = list.data.map((k) => h("tr", { dataset: { keyId: k.id } },
    h("td", {}, k.name, k.current ? h("span", { class: "badge ready" }, "this key") : ""),
    h("td", {}, h("code", {}, `${k.prefix}…`)), h("td", {}, k.scope),
    h("td", {}, fmtTs(k.created_at)), h("td", {}, fmtTs(k.last_used_at)),
    h("td", {}, k.expires_at ? fmtTs(k.expires_at) : "never"),
    h("td", { class: "num" }, h("button", {
      class: "small danger", type: "button", onclick: async (event) => {
        const button = event.currentTarget;
        if (!confirm(`Revoke key "${k.name}" (${k.prefix}…)? Clients using it are refused.`)) return;
        try {
          await api(`/v1/keys/${k.id}`, { method: "DELETE" });
          toast(`Revoked ${k.name}`);
          route();
        } catch (error) { showError(button, error.message); }
      },
    }, "Revoke"))));
  const table = h("table", { id: "keys-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Key"), h("th", {}, "Scope"),
      h("th", {}, "Created"), h("th", {}, "Last used"), h("th", {}, "Expires"), h("th", {}))),
    h("tbody", {}, rows));
  const shown = h("p", { id: "new-key", class: "note", hidden: true });
  const form = h("form", { class: "stack", id: "new-key-form" },
    h("div", { class: "fields" },
      h("label", {}, "Name", h("input", { name: "name", required: true, placeholder: "ingest" })),
      h("label", {}, "Scope", h("select", { name: "scope" },
        h("option", { value: "write" }, "write (everything)"),
        h("option", { value: "read" }, "read (GET only)"))),
      h("label", {}, "Expires (UTC, optional)", h("input", { name: "expires_at",
        type: "datetime-local" }))),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Create")),
    shown);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = form.elements;
    clearError(form);
    const expires = f.expires_at.value ? `${f.expires_at.value}:00Z` : null;
    try {
      const created = await api("/v1/keys", { method: "POST", json: {
        name: f.name.value.trim(), scope: f.scope.value, expires_at: expires } });
      const rowsNow = await api("/v1/keys");
      $("#keys-count").textContent = `Keys (${rowsNow.count})`;
      shown.replaceChildren("New key (shown only this once; copy it now): ",
        h("code", { id: "new-key-value" }, created.key));
      shown.hidden = false;
      form.reset();
    } catch (error) { showError(form, error.message); }
  });
  view.append(
    h("section", { class: "card" }, h("h2", { id: "keys-count" }, `Keys (${list.count})`), table,
      h("p", { class: "muted" }, "A revoked key is refused at once by this server and within " +
        "5 seconds by every other replica. The last write key cannot be revoked.")),
    h("section", { class: "card" }, h("h2", {}, "New key"), form));
}

// ---- series list --------------------------------------------------------------------------

function csvOptionFields() {
  return h("details", {},
    h("summary", {}, "CSV options"),
    h("div", { class: "fields" },
      h("label", {}, "Timestamp column", h("input", { name: "ts_col", placeholder: "first" })),
      h("label", {}, "Value column", h("input", { name: "value_col", placeholder: "the other column" })),
      h("label", {}, "Separator", h("input", { name: "sep", value: ",", maxlength: 1 })),
      h("label", {}, "Decimal mark", h("select", { name: "decimal" },
        h("option", { value: "." }, ". (1.5)"), h("option", { value: "," }, ", (1,5)"))),
      h("label", {}, "Timestamp format", h("input", { name: "ts_format", placeholder: "%d/%m/%Y %H:%M" })),
      h("label", {}, "12/08/2000 is", h("select", { name: "dayfirst" },
        h("option", { value: "" }, "inferred"), h("option", { value: "true" }, "12 August"),
        h("option", { value: "false" }, "December 8"))),
      // Times without an offset are the series' local times; autumn repeats one hour.
      h("label", {}, "Repeated local time", h("select", { name: "ambiguous" },
        h("option", { value: "" }, "refused"), h("option", { value: "earliest" }, "earliest"),
        h("option", { value: "latest" }, "latest"), h("option", { value: "infer" }, "from the order")))));
}

async function uploadCsv(seriesId, form) {
  const file = form.elements.file.files[0];
  const params = new URLSearchParams();
  for (const name of ["ts_col", "value_col", "sep", "decimal", "ts_format", "dayfirst", "ambiguous",
    "on_conflict"]) {
    const value = form.elements[name] && form.elements[name].value.trim();
    if (value) params.set(name, value);
  }
  return api(`/v1/series/${seriesId}/readings?${params}`,
    { method: "POST", body: file, headers: { "Content-Type": "text/csv" } });
}

function uploadSummary(result) {
  return `${result.received} readings: ${result.inserted} new, ${result.updated} updated, ` +
    `${result.unchanged} unchanged (${fmtTs(result.first_ts)} – ${fmtTs(result.last_ts)})`;
}

async function seriesListView(view) {
  setCrumbs("Series");
  const list = await api("/v1/series?limit=1000");
  const rows = list.data.map((s) => h("tr", { dataset: { seriesId: s.id } },
    h("td", {}, h("a", { href: `#/series/${s.id}` }, s.name)),
    h("td", {}, s.freq), h("td", {}, s.unit || "–"), h("td", {}, fmtTs(s.created_at)),
    h("td", { class: "num" }, h("button", {
      class: "small danger", type: "button", onclick: async (event) => {
        const button = event.currentTarget;
        if (!confirm(`Delete series "${s.name}" with all its readings and models?`)) return;
        try {
          await api(`/v1/series/${s.id}`, { method: "DELETE" });
          toast(`Deleted ${s.name}`);
          route();
        } catch (error) { showError(button, error.message); }
      },
    }, "Delete"))));
  const table = list.data.length
    ? h("table", { id: "series-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Frequency"), h("th", {}, "Unit"),
        h("th", {}, "Created"), h("th", {}))),
      h("tbody", {}, rows))
    : h("p", { class: "empty" }, "No series yet: create one below, with a CSV file of readings.");

  const status = h("p", { class: "note" });
  const form = h("form", { class: "stack", id: "new-series" },
    h("div", { class: "fields" },
      h("label", {}, "Name", h("input", { name: "name", required: true, placeholder: "building-7" })),
      h("label", {}, "Frequency", h("input", { name: "freq", required: true, value: "30min",
        list: "freqs" })),
      h("datalist", { id: "freqs" }, FREQS.map((f) => h("option", { value: f }))),
      h("label", {}, "Unit", h("input", { name: "unit", placeholder: "kWh" })),
      h("label", {}, "Time zone", h("input", { name: "timezone", value: "UTC",
        placeholder: "Europe/London" }))),
    h("label", {}, "Readings (CSV with a header row, optional)",
      h("input", { name: "file", type: "file", accept: ".csv,text/csv" })),
    csvOptionFields(),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Create"), status));
  // A series and its CSV are created together or not at all: when the upload is refused, the
  // new (empty) series is deleted again and the form stays filled in for a corrected retry.
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = form.elements;
    const name = f.name.value.trim();
    clearError(form);
    status.textContent = "Creating…";
    let series;
    try {
      series = await api("/v1/series", { method: "POST", json: {
        name, freq: f.freq.value.trim(), unit: f.unit.value.trim() || null,
        timezone: f.timezone.value.trim() || "UTC" } });
    } catch (error) {
      status.textContent = "";
      showError(form, `Nothing was created: ${error.message}`);
      return;
    }
    if (f.file.files.length) {
      status.textContent = "Uploading…";
      try {
        toast(uploadSummary(await uploadCsv(series.id, form)));
      } catch (error) {
        status.textContent = "";
        try {
          await api(`/v1/series/${series.id}`, { method: "DELETE" });
        } catch (cleanup) {
          showError(form, `The CSV file was refused: ${error.message}. Series "${name}" exists ` +
            `but has no readings (deleting it failed: ${cleanup.message}); open it to upload ` +
            "a corrected file, or delete it.");
          route();
          return;
        }
        showError(form, `Nothing was created: the CSV file was refused: ${error.message}. ` +
          "Correct the file or the CSV options, then create the series again.");
        return;
      }
    }
    location.hash = `#/series/${series.id}`;
  });

  view.append(
    h("section", { class: "card" }, h("h2", {}, `Series (${list.count})`), table),
    h("section", { class: "card" }, h("h2", {}, "New series"), form),
    streamsCard(new Map(list.data.map((x) => [x.id, x]))));
}

// ---- every stream, and readings for many streams at once -------------------------------------

// The rows of a CSV whose header names stream_id, ts and value (in any order); an empty value is
// a missing reading. Throws, naming the line, at the first row the API would refuse anyway.
function parseFleetCsv(text) {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  const split = (line) => line.split(",").map((c) => c.trim().replace(/^"(.*)"$/, "$1"));
  const header = split(lines[0] || "");
  const column = {};
  for (const name of ["stream_id", "ts", "value"]) column[name] = header.indexOf(name);
  const missing = Object.keys(column).filter((name) => column[name] < 0);
  if (missing.length) {
    throw new Error(`the header must name the columns stream_id, ts and value; missing ${missing.join(", ")}`);
  }
  const readings = [];
  lines.forEach((line, i) => {
    if (i === 0 || !line.trim()) return;
    const cells = split(line);
    const [streamId, ts, text] = ["stream_id", "ts", "value"].map((name) => cells[column[name]] || "");
    if (!streamId || !ts) throw new Error(`line ${i + 1}: a reading needs a stream_id and a ts`);
    const value = text === "" ? null : Number(text);
    if (value !== null && !Number.isFinite(value)) {
      throw new Error(`line ${i + 1}: value "${text}" is not a number (leave it empty for a missing reading)`);
    }
    readings.push({ stream_id: streamId, ts, value, line: i + 1 });
  });
  if (!readings.length) throw new Error("the file holds no readings");
  return readings;
}

// Requests of at most `limit` readings: each stream's readings in time order, together in one
// request where they fit (the API applies a stream's readings of one request all or none).
function bulkRequests(readings, limit = MAX_BULK_READINGS) {
  const byStream = new Map();
  for (const r of readings) {
    if (!byStream.has(r.stream_id)) byStream.set(r.stream_id, []);
    byStream.get(r.stream_id).push(r);
  }
  const requests = [];
  let current = [];
  for (const rows of byStream.values()) {
    let ordered = [...rows].sort((a, b) =>
      (Date.parse(a.ts) - Date.parse(b.ts)) || (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
    if (current.length && current.length + ordered.length > limit) {
      requests.push(current);
      current = [];
    }
    while (ordered.length > limit) {
      requests.push(ordered.slice(0, limit));
      ordered = ordered.slice(limit);
    }
    current = current.concat(ordered);
  }
  if (current.length) requests.push(current);
  return requests;
}

// Sends a fleet's readings, request by request; returns each stream's outcome by id, in order of
// first appearance. A stream refused in one request has its later readings held back: applied
// after the refused ones, they would leave a gap the model fills with its own forecasts.
async function sendFleet(readings, rewarm, onRequest) {
  const outcome = new Map();
  const requests = bulkRequests(readings);
  for (const [index, planned] of requests.entries()) {
    const sent = planned.filter((r) => {
      const seen = outcome.get(r.stream_id);
      if (seen && seen.status === "refused") { seen.notSent += 1; return false; }
      return true;
    });
    if (!sent.length) continue;
    onRequest(index + 1, requests.length);
    let answer;
    try {
      answer = await api(`/v1/streams/readings${rewarm ? "?rewarm=true" : ""}`, { method: "POST",
        json: { readings: sent.map(({ stream_id, ts, value }) => ({ stream_id, ts, value })) } });
    } catch (error) {
      // A request refused whole names readings by their place in it: say the file's line.
      error.message = error.message.replace(/readings[.[](\d+)\]?(?:\.(\w+))?/g, (whole, i, name) =>
        (sent[Number(i)] ? `line ${sent[Number(i)].line}${name ? ` (${name})` : ""}` : whole));
      Object.assign(error, { outcome, request: index + 1, requests: requests.length });
      throw error;
    }
    const counts = new Map();
    for (const r of sent) counts.set(r.stream_id, (counts.get(r.stream_id) || 0) + 1);
    for (const entry of answer.streams) {
      if (!outcome.has(entry.stream_id)) {
        outcome.set(entry.stream_id, { stream_id: entry.stream_id, status: "applied", applied: 0,
          duplicates: 0, filled: 0, refused: 0, notSent: 0, last_ts: null, error: null });
      }
      const total = outcome.get(entry.stream_id);
      total.applied += entry.applied || 0;
      total.duplicates += entry.duplicates || 0;
      total.filled += entry.filled || 0;
      if (entry.status === "refused") {
        Object.assign(total, { status: "refused", error: entry.error || {} });
        total.refused += counts.get(entry.stream_id) || 0;
      } else if (entry.last_ts) {
        total.last_ts = entry.last_ts;
      }
    }
  }
  return outcome;
}

function fleetResult(outcome) {
  const streams = [...outcome.values()];
  const sum = (key) => streams.reduce((total, s) => total + s[key], 0);
  const refused = streams.filter((s) => s.status === "refused").length;
  const reason = (s) => (s.error ? `${s.error.status}: ${problemMessage(s.error.status, s.error)}` +
    (s.notSent ? ` (${s.notSent} later readings not sent)` : "") : "");
  return h("div", { id: "bulk-result" },
    h("p", { class: refused ? "warn" : "note" }, `${sum("applied")} applied, ` +
      `${sum("duplicates")} duplicates, ${sum("refused") + sum("notSent")} refused; ` +
      `${streams.length} streams (${refused} refused).`),
    h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Stream"), h("th", {}, "Result"),
        ...["Applied", "Duplicates", "Filled"].map((name) => h("th", { class: "num" }, name)),
        h("th", {}, "Last reading"), h("th", {}, "Reason"))),
      h("tbody", {}, streams.map((s) => h("tr", { dataset: { streamId: s.stream_id } },
        h("td", {}, s.status === "refused" ? s.stream_id
          : h("a", { href: `#/streams/${encodeURIComponent(s.stream_id)}` }, s.stream_id)),
        h("td", {}, badge(s.status)), h("td", { class: "num" }, s.applied),
        h("td", { class: "num" }, s.duplicates), h("td", { class: "num" }, s.filled),
        h("td", {}, fmtTs(s.last_ts)), h("td", { class: "error" }, reason(s)))))));
}

function streamsCard(seriesById) {
  const heading = h("h2", {}, "Streams");
  const listBox = h("div", { id: "streams-list" }, h("p", { class: "empty" }, "Loading…"));
  const status = h("span", { class: "note" });
  const result = h("div", {});
  const form = h("form", { class: "stack", id: "bulk-readings" },
    h("label", {}, "Readings of many streams (CSV with a header: stream_id,ts,value)",
      h("input", { name: "file", type: "file", accept: ".csv,text/csv", required: true })),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "rewarm" }),
      "restart a stream from its stored history when a gap is too long to fill"),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Send readings"), status));

  async function drawStreams() {
    try {
      const streams = await api("/v1/streams?limit=1000");
      heading.textContent = `Streams (${streams.count})`;
      listBox.replaceChildren(streams.data.length ? h("table", { id: "streams-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Stream"), h("th", {}, "Series"), h("th", {}, "Model"),
          h("th", { class: "num" }, "Readings applied"), h("th", {}, "Last reading"),
          h("th", { class: "num" }, "Next forecast"))),
        h("tbody", {}, streams.data.map((st) => h("tr", { dataset: { streamId: st.id } },
          h("td", {}, h("a", { href: `#/streams/${encodeURIComponent(st.id)}` }, st.id)),
          h("td", {}, seriesById.has(st.series_id)
            ? h("a", { href: `#/series/${st.series_id}` }, seriesById.get(st.series_id).name) : st.series_id),
          h("td", {}, st.model_id ?? "–"), h("td", { class: "num" }, st.readings_applied),
          h("td", {}, fmtTs(st.last_ts)),
          h("td", { class: "num" }, st.next_forecast ? fmt(st.next_forecast.mean) : "–")))))
        : h("p", { class: "empty" }, "No streams yet: open one on a series' page."));
    } catch (error) {
      listBox.replaceChildren(h("p", { class: "error" }, error.message));
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError(form);
    result.replaceChildren();
    let readings;
    try {
      readings = parseFleetCsv(await form.elements.file.files[0].text());
    } catch (error) {
      showError(form, `Nothing was sent: ${error.message}.`);
      return;
    }
    try {
      const outcome = await sendFleet(readings, form.elements.rewarm.checked, (n, total) => {
        status.textContent = total > 1 ? `Sending request ${n} of ${total}…` : "Sending…";
      });
      result.replaceChildren(fleetResult(outcome));
    } catch (error) {
      const earlier = error.outcome && error.outcome.size;
      if (earlier) result.replaceChildren(fleetResult(error.outcome));
      showError(form, `Request ${error.request || 1} of ${error.requests || 1} was refused whole ` +
        `and nothing of it applied: ${error.message}` +
        (earlier ? " The requests before it were applied, as listed below." : ""));
    } finally {
      status.textContent = "";
    }
    await drawStreams();
  });

  drawStreams();
  return h("section", { class: "card" }, heading, listBox,
    h("h3", {}, "Send readings for many streams"),
    h("p", { class: "note" }, "Each stream's readings are applied all together or not at all; a " +
      "refused stream (unknown, a conflicting or off-grid reading, a gap too long) leaves the " +
      "others applied. Re-sent readings come back as duplicates."),
    form, result);
}

// ---- one series ---------------------------------------------------------------------------

function seriesInputs(series) {
  // What the series' models may read besides its readings: covariate series and the calendar.
  const covariates = series.covariates || [];
  const days = series.special_days || [];
  if (!covariates.length && !series.holidays && !days.length) return null;
  return h("div", { class: "facts", id: "series-inputs" },
    covariates.length ? h("span", { id: "series-covariates" }, "covariates ",
      covariates.flatMap((c, i) => [i ? ", " : "", h("a", { href: `#/series/${c.series_id}` },
        h("b", {}, c.name)), c.known_future ? "" : " (past only)"])) : null,
    series.holidays ? h("span", { id: "series-holidays" }, "holidays ", h("b", {}, series.holidays)) : null,
    days.length ? h("span", { id: "series-special-days",
      title: days.map((d) => `${d.date} ${d.label}`).join("\n") },
      h("b", {}, days.length), days.length === 1 ? " special day" : " special days") : null);
}

function bandTraces(points, level, alpha) {
  const x = points.map((p) => p.ts);
  const upper = points.map((p) => p[`upper_${level}`]);
  const lower = points.map((p) => p[`lower_${level}`]);
  if (upper.some((v) => v === undefined)) return [];
  return [
    { x, y: upper, type: "scatter", mode: "lines", line: { width: 0 }, hoverinfo: "skip",
      showlegend: false, name: `upper ${level}%` },
    { x, y: lower, type: "scatter", mode: "lines", line: { width: 0 }, fill: "tonexty",
      fillcolor: `rgba(${COLORS.band[level]}, ${alpha})`, name: `${level}% interval`,
      customdata: upper, hovertemplate: `${level}%: %{y:.4g} – %{customdata:.4g}<extra></extra>` },
  ];
}

function forecastTraces(points) {
  // Widest band first: the narrower one drawn on top comes out darker.
  return [
    ...bandTraces(points, 95, 0.3),
    ...bandTraces(points, 80, 0.35),
    { x: points.map((p) => p.ts), y: points.map((p) => p.mean), type: "scatter", mode: "lines",
      name: "forecast", line: { color: COLORS.forecast, width: 2 } },
  ];
}

const chartLayout = (title, yTitle) => ({
  title: title ? { text: title, font: { size: 14 } } : undefined,
  margin: { l: 60, r: 20, t: title ? 40 : 20, b: 40 },
  hovermode: "x unified",
  // Filled traces would otherwise reverse the legend.
  legend: { orientation: "h", y: -0.15, traceorder: "normal" },
  xaxis: { type: "date" },
  yaxis: { title: { text: yTitle || "" }, zeroline: false },
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "rgba(0,0,0,0)",
});

function metricCells(metrics) {
  const full = (metrics && metrics.full_horizon) || {};
  const model = full.model || {};
  const naive = full.seasonal_naive || {};
  const lag = metrics && metrics.baseline ? metrics.baseline.lag : undefined;
  const naiveTitle = lag === undefined ? "seasonal naive" : `seasonal naive, lag ${lag} readings`;
  return ["mae", "rmse", "smape", "mase"].map((name) => {
    const better = model[name] !== undefined && naive[name] !== undefined && model[name] < naive[name];
    return h("td", { class: "num" },
      h("span", { class: model[name] === undefined ? "" : better ? "good" : "warn" }, fmt(model[name])),
      h("span", { class: "muted", title: naiveTitle }, ` / ${fmt(naive[name])}`));
  });
}

function coverageCell(metrics) {
  const coverage = (metrics && metrics.interval_coverage) || {};
  const parts = LEVELS.filter((l) => coverage[l] !== undefined)
    .map((l) => `${l}%→${(100 * coverage[l]).toFixed(0)}%`);
  return h("td", { class: "num" }, parts.join(" ") || "–");
}

function trainForm(seriesId) {
  const input = (field) => {
    if (field.kind === "select") {
      return h("label", {}, field.name, h("select", { name: field.name },
        field.options.map((o) => h("option", { value: o, selected: o === field.value }, o))));
    }
    if (field.kind === "bool") {
      return h("label", { class: "check" },
        h("input", { type: "checkbox", name: field.name, checked: field.value }), field.name);
    }
    return h("label", {}, field.name.replace(/_/g, " "), h("input", {
      name: field.name, type: "number", value: field.value, placeholder: field.placeholder,
      step: field.kind === "float" ? "any" : "1" }));
  };
  const status = h("span", { class: "note" });
  const form = h("form", { class: "stack", id: "train-form" },
    h("div", { class: "fields" }, SPEC_FIELDS.filter((f) => !f.advanced).map(input)),
    h("details", {}, h("summary", {}, "More options"),
      h("div", { class: "fields" }, SPEC_FIELDS.filter((f) => f.advanced).map(input))),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Train"), status));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const spec = {};
    for (const field of SPEC_FIELDS) {
      const el = form.elements[field.name];
      if (field.kind === "bool") spec[field.name] = el.checked;
      else if (field.kind === "select" && el.value in TRISTATE) {
        if (TRISTATE[el.value] !== undefined) spec[field.name] = TRISTATE[el.value];
      } else if (field.kind === "select") spec[field.name] = el.value;
      else if (el.value.trim() !== "") spec[field.name] = Number(el.value);
    }
    status.textContent = "Submitting…";
    try {
      const accepted = await api("/v1/models", { method: "POST", json: { series_ids: [seriesId], spec } });
      location.hash = `#/jobs/${accepted.job.id}`;
    } catch (error) {
      status.textContent = "";
      showError(form, error.message);
    }
  });
  return form;
}

async function seriesView(view, seriesId) {
  const series = await api(`/v1/series/${seriesId}`);
  setCrumbs(h("a", { href: "#/" }, "Series"), series.name);

  const chart = h("div", { class: "chart", id: "series-chart" });
  const chartEmpty = h("p", { class: "empty", id: "series-chart-empty", hidden: true });
  const chartNote = h("p", { class: "note", id: "forecast-note" });
  const horizon = h("input", { type: "number", min: 1, value: DEFAULT_HORIZON, id: "horizon",
    style: "width: 6rem" });
  const modelsBox = h("div", { id: "models" }, h("p", { class: "empty" }, "Loading…"));

  const uploadStatus = h("span", { class: "note" });
  const uploadForm = h("form", { class: "stack", id: "upload-form" },
    h("input", { name: "file", type: "file", accept: ".csv,text/csv", required: true }),
    csvOptionFields(),
    h("label", {}, "A stored timestamp sent with another value", h("select", { name: "on_conflict" },
      h("option", { value: "error" }, "refuse the upload"), h("option", { value: "replace" }, "replace it"))),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Upload"), uploadStatus));
  uploadForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    uploadStatus.textContent = "Uploading…";
    try {
      clearError(uploadForm);
      const result = await uploadCsv(seriesId, uploadForm);
      uploadStatus.textContent = uploadSummary(result);
      await drawChart();
    } catch (error) {
      uploadStatus.textContent = "";
      showError(uploadForm, error.message);
    }
  });

  const streamButton = h("button", { type: "button", id: "new-stream", onclick: async () => {
    try {
      const stream = await api("/v1/streams", { method: "POST", json: { series_id: seriesId } });
      location.hash = `#/streams/${encodeURIComponent(stream.id)}`;
    } catch (error) { showError($("#streams"), error.message); }
  } }, "Open a stream");

  view.append(
    h("section", { class: "page-head" },
      h("div", {}, h("h1", {}, series.name),
        h("div", { class: "facts" },
          h("span", {}, "every ", h("b", {}, series.freq)),
          h("span", {}, "local time ", h("b", {}, series.timezone || "UTC")),
          h("span", {}, h("b", { id: "reading-count" }, series.readings), " readings"),
          h("span", {}, fmtTs(series.first_ts), " – ", fmtTs(series.last_ts)),
          series.unit ? h("span", {}, "unit ", h("b", {}, series.unit)) : null),
        seriesInputs(series))),
    h("section", { class: "card" },
      h("div", { class: "page-head" }, h("h2", {}, "History and forecast"),
        h("label", { class: "check" }, "horizon", horizon,
          h("button", { type: "button", class: "small", onclick: () => drawChart() }, "Forecast"))),
      chart, chartEmpty, chartNote),
    h("section", { class: "card" }, h("h2", {}, "Models"), modelsBox),
    h("div", { class: "grid-2" },
      h("section", { class: "card" }, h("h2", {}, "Train a model"), trainForm(seriesId)),
      h("section", { class: "card" },
        h("h2", {}, "Upload readings"), uploadForm,
        h("h2", { style: "margin-top: 1.5rem" }, "Streams"),
        h("p", { class: "note" }, "A stream carries the model's hidden state from reading to " +
          "reading and forecasts the next step as each arrives."),
        h("div", { class: "actions", id: "streams" }, streamButton))));

  api(`/v1/streams?series_id=${seriesId}&limit=50`).then((streams) => {
    $("#streams").append(...streams.data.map((st) =>
      h("a", { href: `#/streams/${encodeURIComponent(st.id)}` }, `stream ${st.id}`)));
  }).catch(() => {}); // streams are optional on this page

  async function drawChart() {
    const [readings, detail] = await Promise.all([
      api(`/v1/series/${seriesId}/readings`), api(`/v1/series/${seriesId}`)]);
    const start = readings.data.length ? readings.data[0].ts : null;
    // Each covariate over the series' span and past it: its stored forecast shows too.
    const covariates = start === null ? [] : await Promise.all(series.covariates.map((c) =>
      api(`/v1/series/${c.series_id}/readings?${new URLSearchParams({ start })}`)
        .then((r) => ({ ...c, data: r.data })).catch(() => ({ ...c, data: [] }))));
    $("#reading-count").textContent = detail.readings;
    const local = wallClock(series.timezone);
    const history = withGaps(readings.data, series.freq);
    const traces = [{ x: history.map((r) => local(r.ts)), y: history.map((r) => r.value),
      type: "scatter", mode: "lines", name: "history", line: { color: COLORS.history, width: 1.2 },
      connectgaps: false }];
    let forecast = null;
    if (readings.data.length) {
      const query = new URLSearchParams({ horizon: horizon.value || DEFAULT_HORIZON });
      for (const level of LEVELS) query.append("level", level);
      try {
        forecast = await api(`/v1/series/${seriesId}/forecast?${query}`);
        traces.push(...forecastTraces(forecast.points.map((p) => ({ ...p, ts: local(p.ts) }))));
        const reads = forecast.covariates && forecast.covariates.length
          ? ` (reading ${forecast.covariates.join(", ")})` : "";
        chartNote.textContent = `Forecast by model ${forecast.model_id}${reads}, with its 80% and 95% ` +
          "prediction intervals." + (forecast.warning ? ` ${forecast.warning}` : "");
        chartNote.classList.toggle("warn", Boolean(forecast.warning));
      } catch (error) {
        chartNote.textContent = error.status === 404 || error.status === 409
          ? `No forecast yet: ${error.message}` : `Forecast failed: ${error.message}`;
      }
    } else {
      chartNote.textContent = "";
    }
    chart.dataset.forecastPoints = forecast ? forecast.points.length : 0;
    chartOrSentence(chart, chartEmpty, readings.data.length ? "" :
      "No readings yet, so nothing to draw: upload a CSV file of readings below, or post them " +
      "to the API. The history and its forecast appear here.");
    if (!readings.data.length) return;
    const layout = chartLayout("", series.unit);
    if (covariates.length) {
      covariates.forEach((c, i) => traces.push({
        x: c.data.map((r) => local(r.ts)), y: c.data.map((r) => r.value), type: "scatter",
        mode: "lines", name: `covariate ${c.name}`, yaxis: "y2", connectgaps: false,
        line: { color: COLORS.covariates[i % COLORS.covariates.length], width: 1.2 } }));
      layout.yaxis = { ...layout.yaxis, domain: [COVARIATE_PANEL + 0.05, 1] };
      layout.yaxis2 = { domain: [0, COVARIATE_PANEL], anchor: "x", zeroline: false,
        title: { text: covariates.map((c) => c.name).join(", ") } };
    }
    const data = readings.data;
    if (data.length && Date.parse(data[data.length - 1].ts) - Date.parse(data[0].ts) > 2 * INITIAL_VIEW_DAYS * DAY_MS) {
      const end = local(forecast && forecast.points.length ? forecast.points[forecast.points.length - 1].ts : data[data.length - 1].ts);
      const start = local(new Date(Date.parse(data[data.length - 1].ts) - INITIAL_VIEW_DAYS * DAY_MS).toISOString());
      layout.xaxis = { ...layout.xaxis, range: [start, end] };
      layout.yaxis = { ...layout.yaxis, autorange: true };
    }
    await Plotly.react(chart, traces, layout, PLOT_CONFIG);
  }

  async function drawModels() {
    const [models, jobs] = await Promise.all([
      api(`/v1/models?series_id=${seriesId}&limit=100`), api("/v1/jobs?limit=200")]);
    const jobOf = new Map(jobs.data.map((j) => [j.model_id, j]));
    if (!models.data.length) {
      modelsBox.replaceChildren(h("p", { class: "empty" }, "No models yet: train one below."));
      return;
    }
    const rows = models.data.map((m) => {
      const spec = m.resolved_spec || m.spec || {};
      const job = jobOf.get(m.id);
      return h("tr", { dataset: { modelId: m.id } },
        h("td", {}, `#${m.id}`),
        h("td", {}, badge(m.status), m.is_default ? [" ", badge("default")] : null,
          m.worse_than_naive ? h("span", { class: "warn", title: "worse than the seasonal naive on validation" }, " ⚠") : null),
        h("td", {}, `${spec.cell || "lstm"} ${spec.units || ""}×${spec.layers || 1}` +
          (spec.stateful ? " stateful" : "") + (spec.bidirectional ? " bidir" : "")),
        ...metricCells(m.metrics), coverageCell(m.metrics),
        h("td", {}, job ? h("a", { href: `#/jobs/${job.id}` }, `job ${job.id}`) : "–"),
        h("td", { class: "num" }, h("button", {
          type: "button", class: "small", disabled: m.status !== "ready" || m.is_default,
          onclick: async (event) => {
            const button = event.currentTarget;
            try {
              await api(`/v1/models/${m.id}/promote`, { method: "POST" });
              toast(`Model ${m.id} is now the default`);
              await Promise.all([drawModels(), drawChart()]);
            } catch (error) { showError(button, error.message); }
          } }, "Promote")));
    });
    modelsBox.replaceChildren(h("table", { id: "models-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Model"), h("th", {}, "Status"), h("th", {}, "Network"),
        ...["MAE", "RMSE", "sMAPE", "MASE"].map((m) => h("th", { class: "num" }, `${m} model / naive`)),
        h("th", { class: "num" }, "Coverage"), h("th", {}, "Job"), h("th", {}))),
      h("tbody", {}, rows)),
    h("p", { class: "note" }, "Test-part errors over the full horizon, the model's beside the " +
      "seasonal naive's (the stronger of the same time one day or one week earlier on the training part; " +
      "hover for its lag; MASE is scaled by its in-sample error; lower is better); coverage is the share of test readings inside each interval."));
  }

  await Promise.all([drawChart(), drawModels().catch((error) => {
    modelsBox.replaceChildren(h("p", { class: "error" }, error.message));
  })]);
}

// ---- a training job -----------------------------------------------------------------------

async function readEvents(url, onEvent, signal) {
  // EventSource cannot send the Authorization header, so read the event stream through fetch.
  const response = await fetch(url, {
    headers: { Authorization: `Bearer ${getKey()}`, Accept: "text/event-stream" }, signal });
  const type = response.headers.get("content-type") || "";
  if (!response.ok || !response.body || !type.startsWith("text/event-stream")) {
    throw new ApiError(response.status, "no event stream");
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const lines = buffer.slice(0, end).split("\n");
      buffer = buffer.slice(end + 2);
      const named = lines.find((line) => line.startsWith("event:"));
      const data = lines.filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, "")).join("\n");
      if (data) onEvent(named ? named.slice(6).trim() : "message", JSON.parse(data));
    }
  }
}

function streamJobEvents(jobId, onJob, signal) {
  return readEvents(`/v1/jobs/${jobId}/events`, (_, job) => onJob(job), signal);
}

async function jobView(view, jobId) {
  let job = await api(`/v1/jobs/${jobId}`);
  const model = await api(`/v1/models/${job.model_id}`);
  const seriesId = model.series_ids[0];
  const seriesName = await api(`/v1/series/${seriesId}`).then((s) => s.name, () => `series ${seriesId}`);
  setCrumbs(h("a", { href: "#/" }, "Series"),
    h("a", { href: `#/series/${seriesId}` }, seriesName), `job ${jobId}`);

  const bar = h("div", {});
  const barBox = h("div", { class: "progress", id: "job-progress", role: "progressbar",
    "aria-valuemin": 0, "aria-valuemax": 100 }, bar);
  const statusLine = h("p", { id: "job-status" });
  const figures = h("div", { class: "figures" });
  const chart = h("div", { class: "chart small", id: "loss-chart", hidden: true });
  const lossEmpty = h("p", { class: "empty", id: "loss-empty" });
  const result = h("div", { id: "job-result" });
  const cancel = h("button", { type: "button", class: "danger", onclick: async () => {
    try {
      clearError(cancel);
      render(await api(`/v1/jobs/${jobId}/cancel`, { method: "POST" }));
    } catch (error) { showError(cancel, error.message); }
  } }, "Cancel");
  const live = h("span", { class: "note", id: "job-live" });

  view.append(
    h("section", { class: "card" },
      h("div", { class: "page-head" }, h("h1", {}, `Training job ${jobId}`), h("div", { class: "actions" }, live, cancel)),
      statusLine, barBox, figures),
    h("section", { class: "card" }, h("h2", {}, "Loss per epoch"), chart, lossEmpty),
    result);

  const history = new Map();
  let finished = false;
  let plotted = false;

  // Why the loss chart is still empty, in words: an empty plot's axes (epoch -1 to 6) mislead.
  function lossSentence(status, phase) {
    if (status === "queued") return "Waiting for a worker to claim this job; the loss of each epoch appears here once training runs.";
    if (status === "running" && phase === "starting") return "Starting: the worker is loading TensorFlow and the data (about 20 s); the first epoch's loss appears here when it ends.";
    if (status === "running") return "Training: the first epoch's loss appears here when it ends.";
    return `No epoch finished (${status}).`;
  }

  function render(next) {
    if (next.job) next = next.job; // an event may wrap the job
    if (next.status === undefined && next.epoch !== undefined) next = { ...job, progress: next };
    job = { ...job, ...next };
    const p = job.progress || {};
    const done = job.status === "succeeded";
    const percent = done ? 100 : p.epochs ? Math.round((100 * p.epoch) / p.epochs) : 0;
    bar.style.width = `${percent}%`;
    barBox.dataset.percent = percent;
    barBox.setAttribute("aria-valuenow", percent);
    barBox.classList.toggle("done", done);
    const starting = job.status === "running" && (!job.progress || p.phase === "starting");
    statusLine.replaceChildren(badge(starting ? "starting" : job.status), " ",
      starting ? "loading TensorFlow and the data" : p.epochs ? `epoch ${p.epoch} of ${p.epochs}`
        : job.status === "queued" ? "waiting for a worker" : "",
      job.error ? h("span", { class: "error" }, ` — ${job.error}`) : "");
    const figure = (label, value) => h("div", { class: "figure" },
      h("span", { class: "value" }, value), h("span", { class: "label" }, label));
    figures.replaceChildren(figure("progress", `${percent}%`), figure("loss", fmt(p.loss)),
      figure("validation loss", fmt(p.val_loss)), figure("elapsed", fmtDuration(p.elapsed_s)),
      figure("remaining", FINAL_STATUSES.includes(job.status) ? "–" : fmtDuration(p.eta_s)));
    cancel.hidden = FINAL_STATUSES.includes(job.status); // nothing left to cancel
    for (const point of p.history || []) history.set(point.epoch, point);
    if (p.epoch) history.set(p.epoch, { epoch: p.epoch, loss: p.loss, val_loss: p.val_loss });
    const epochs = [...history.keys()].sort((a, b) => a - b);
    chartOrSentence(chart, lossEmpty, epochs.length ? "" : lossSentence(job.status, starting ? "starting" : p.phase));
    if (epochs.length) {
      const traces = [
        { x: epochs, y: epochs.map((e) => history.get(e).loss), name: "training loss",
          mode: "lines+markers", line: { color: COLORS.forecast } },
        { x: epochs, y: epochs.map((e) => history.get(e).val_loss), name: "validation loss",
          mode: "lines+markers", line: { color: COLORS.val } },
      ];
      const layout = { ...chartLayout("", "loss"), xaxis: { title: { text: "epoch" }, dtick: 1 } };
      if (!plotted) Plotly.newPlot(chart, traces, layout, PLOT_CONFIG);
      else Plotly.react(chart, traces, layout, PLOT_CONFIG);
      plotted = true;
    }
    if (FINAL_STATUSES.includes(job.status) && !finished) {
      finished = true;
      live.textContent = "";
      showResult();
    }
  }

  async function showResult() {
    const trained = await api(`/v1/models/${job.model_id}`);
    const m = trained.metrics;
    result.replaceChildren(h("section", { class: "card" },
      h("h2", {}, `Model ${trained.id} `, badge(trained.status)),
      m ? h("table", {}, h("thead", {}, h("tr", {}, ...["MAE", "RMSE", "sMAPE", "MASE"].map((n) =>
        h("th", { class: "num" }, `${n} model / naive`)), h("th", { class: "num" }, "Coverage"))),
      h("tbody", {}, h("tr", {}, ...metricCells(m), coverageCell(m)))) : null,
      trained.worse_than_naive ? h("p", { class: "warn" }, "This model is worse than the seasonal naive on validation data.") : null,
      h("p", {}, h("a", { href: `#/series/${seriesId}` }, "See its forecast on the series page →"))));
  }

  render(job);
  if (finished) return;
  const controller = new AbortController();
  onLeave(() => controller.abort());
  try {
    live.textContent = "live (events)";
    await streamJobEvents(jobId, render, controller.signal);
  } catch (error) {
    if (controller.signal.aborted) return;
  }
  // No event stream (or it ended early): poll until the job ends.
  live.textContent = finished ? "" : "live (polling)";
  while (!finished && !controller.signal.aborted) {
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
    if (controller.signal.aborted) return;
    try { render(await api(`/v1/jobs/${jobId}`, { signal: controller.signal })); } catch (error) {
      if (!controller.signal.aborted) live.textContent = `polling: ${error.message}`;
    }
  }
}

// ---- a stream -----------------------------------------------------------------------------

// What each figure on the stream page means; the seasonal naive (the reading one season
// earlier) is the baseline of the model table too.
const STREAM_FIGURE_HELP = {
  "readings applied": "Readings that have moved this stream's hidden state since it was opened.",
  "next forecast": "The model's forecast for the next reading, made from the state after the last one.",
  "MAE": "Mean absolute error of the one-step forecasts over the judged readings, in the series' unit.",
  "MASE model / naive": "Mean absolute scaled error: each MAE divided by the seasonal naive's MAE on " +
    "the training data, the scale the model table's MASE uses. The model's, then the seasonal " +
    "naive's on these same readings; below 1 beats the naive's typical error.",
  "MAE ÷ naive MAE": "This stream's MAE divided by the seasonal naive's MAE on the same readings: " +
    "below 1, the model beats the naive here; 2 means twice its error. Over few readings it swings widely.",
  "80% coverage": "Share of judged readings that fell inside the 80% interval forecast for them (about 80% when calibrated).",
  "95% coverage": "Share of judged readings that fell inside the 95% interval forecast for them (about 95% when calibrated).",
  "judged": "Readings that had a forecast to compare with, since the stream was last (re)warmed.",
};

// Seconds between readings for the common pandas aliases; null for the rest (all history read).
function freqSeconds(freq) {
  const m = /^(\d*)(s|min|h|D)$/.exec(freq);
  if (!m) return null;
  return (Number(m[1] || 1)) * { s: 1, min: 60, h: 3600, D: 86400 }[m[2]];
}

// The longest one step of `freq` can last, in seconds: calendar steps differ in length (a
// month: 28 to 31 days); null where unknown.
function longestStepSeconds(freq) {
  const fixed = freqSeconds(freq);
  if (fixed) return fixed;
  const m = /^(\d*)(W|M|Q|Y|A)/.exec(freq);
  if (!m) return null;
  return (Number(m[1] || 1)) * { W: 7, M: 31, Q: 92, Y: 366, A: 366 }[m[2]] * 86400;
}

// Readings as a line that breaks where readings are missing: Plotly joins the points it is
// given, so a gap must be a null point, or it is drawn as a straight line that looks like data.
function withGaps(readings, freq) {
  const step = longestStepSeconds(freq);
  if (!step) return readings;
  const shown = [];
  let previous = null;
  for (const reading of readings) {
    const t = Date.parse(reading.ts);
    if (previous !== null && t - previous > 1000 * step) {
      shown.push({ ts: new Date(previous + 1000 * step).toISOString(), value: null });
    }
    shown.push(reading);
    previous = t;
  }
  return shown;
}

function nextTs(lastTs, freq) {
  const step = freqSeconds(freq);
  if (!lastTs || !step) return "";
  return new Date(Date.parse(lastTs) + 1000 * step).toISOString().replace(".000Z", "Z");
}

async function streamView(view, streamId) {
  const path = `/v1/streams/${encodeURIComponent(streamId)}`;
  let stream = await api(path);
  const series = await api(`/v1/series/${stream.series_id}`);
  setCrumbs(h("a", { href: "#/" }, "Series"),
    h("a", { href: `#/series/${series.id}` }, series.name), `stream ${streamId}`);

  const chart = h("div", { class: "chart", id: "stream-chart" });
  const figures = h("div", { class: "figures", id: "stream-figures" });
  const facts = h("div", { class: "facts", id: "stream-facts" });
  const tsInput = h("input", { name: "ts", required: true, size: 22 });
  const valueInput = h("input", { name: "value", type: "number", step: "any", required: true });
  // The timestamp follows the stream's last reading until the user types one of their own.
  tsInput.addEventListener("input", () => { delete tsInput.dataset.auto; });
  const form = h("form", { class: "actions", id: "push-form" },
    h("label", {}, "Timestamp", tsInput), h("label", {}, "Value", valueInput),
    h("button", { type: "submit", class: "primary" }, "Send reading"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api(`${path}/readings`, { method: "POST",
        json: { readings: [{ ts: tsInput.value.trim(), value: Number(valueInput.value) }] } });
      valueInput.value = "";
      tsInput.dataset.auto = "";
      clearError(form);
      await refresh();
    } catch (error) { showError(form, error.message); }
  });

  view.append(
    h("section", { class: "card" },
      h("h1", {}, `Stream ${streamId}`), h("p", { class: "muted" }, "on series ", series.name), facts),
    h("section", { class: "card" }, h("h2", {}, "Readings and next-step forecasts"), figures, chart,
      h("dl", { class: "figure-help", id: "stream-figure-help" },
        Object.entries(STREAM_FIGURE_HELP).flatMap(([label, help]) => [h("dt", {}, label), h("dd", {}, help)])),
      h("p", { class: "note" }, "Each reading moves the model's hidden state one step. The dotted " +
        "line is what the stream forecast for each step before its reading arrived (as this page " +
        "saw it); the bar on the next step is its 95% interval. The figures count every reading " +
        "since the stream was (re)warmed. Times are UTC.")),
    h("section", { class: "card" }, h("h2", {}, "Send a reading"), form));

  // The one-step forecast shown before each reading arrived, keyed by its timestamp.
  const stepForecasts = new Map();
  const step = freqSeconds(series.freq);
  const span = 3 * ((step && 86400 / step) || 48); // three days of readings, or 144 of them
  // Each figure carries its explanation as a tooltip, and the same words stand below the figures.
  const figure = (label, value) => h("div", { class: "figure", title: STREAM_FIGURE_HELP[label] || "" },
    h("span", { class: "value" }, value), h("span", { class: "label" }, label));
  const percent = (share) => (share === null || share === undefined ? "–" : `${Math.round(100 * share)}%`);
  let drawn = false;

  async function refresh() {
    stream = await api(path);
    if (stream.next_forecast) stepForecasts.set(stream.next_forecast.ts, stream.next_forecast);
    const start = stream.last_ts && step
      ? new Date(Date.parse(stream.last_ts) - 1000 * step * span).toISOString() : null;
    const query = start ? `?start=${encodeURIComponent(start)}` : "";
    const readings = withGaps((await api(`/v1/series/${series.id}/readings${query}`)).data.slice(-span),
      series.freq);
    const a = stream.accuracy || {};
    facts.replaceChildren(
      h("span", {}, "model ", h("b", {}, stream.model_id ?? "–"), stream.pinned ? " (pinned)" : " (series default)"),
      h("span", {}, "last reading ", h("b", {}, fmtTs(stream.last_ts))),
      h("span", {}, "updated ", h("b", {}, fmtTs(stream.updated_at))));
    const next = stream.next_forecast;
    // The naive's MASE on the same scale as the model's (the training data's seasonal-naive
    // MAE), so the pair reads like the model table's "model / naive" columns.
    const scale = a.mae && a.mase ? a.mae / a.mase : null;
    const naiveMase = scale && a.naive_mae !== null && a.naive_mae !== undefined ? a.naive_mae / scale : null;
    const nextFigure = figure("next forecast", next ? fmt(next.mean) : "–");
    if (next) nextFigure.querySelector(".label").textContent = `next forecast (${fmtTs(next.ts)})`;
    figures.replaceChildren(
      figure("readings applied", stream.readings_applied), nextFigure,
      figure("MAE", fmt(a.mae)), figure("MASE model / naive", `${fmt(a.mase)} / ${fmt(naiveMase)}`),
      figure("MAE ÷ naive MAE", fmt(a.relative_mae, 3)),
      figure("80% coverage", percent(a.coverage_80)), figure("95% coverage", percent(a.coverage_95)),
      figure("judged", a.judged ?? 0));
    if (!tsInput.value || tsInput.dataset.auto !== undefined) {
      tsInput.value = nextTs(stream.last_ts, series.freq);
      tsInput.dataset.auto = "";
    }
    const past = [...stepForecasts.values()].sort((x, y) => (x.ts < y.ts ? -1 : 1));
    const traces = [
      { x: readings.map((r) => r.ts), y: readings.map((r) => r.value), name: "readings",
        type: "scatter", mode: "lines+markers", marker: { size: 4 }, line: { color: COLORS.history } },
      { x: past.map((p) => p.ts), y: past.map((p) => p.mean), name: "step forecasts",
        type: "scatter", mode: "lines+markers", marker: { size: 5 },
        line: { color: COLORS.forecast, dash: "dot" } },
    ];
    if (next) {
      // One step's interval: error bars on the next-step marker (95%), the 80% one in hover.
      const bounds = next.lower_95 !== undefined;
      traces.push({ x: [next.ts], y: [next.mean], name: "next step", type: "scatter", mode: "markers",
        marker: { color: COLORS.forecast, size: 10, symbol: "diamond" },
        customdata: [[next.lower_80, next.upper_80, next.lower_95, next.upper_95]],
        hovertemplate: "next %{y:.4g}" + (bounds ? "<br>80%: %{customdata[0]:.4g} – %{customdata[1]:.4g}" +
          "<br>95%: %{customdata[2]:.4g} – %{customdata[3]:.4g}" : "") + "<extra></extra>",
        error_y: bounds ? { type: "data", symmetric: false, array: [next.upper_95 - next.mean],
          arrayminus: [next.mean - next.lower_95], color: `rgba(${COLORS.band[95]}, 0.9)`, thickness: 2 } : undefined });
    }
    chart.dataset.readings = stream.readings_applied;
    const layout = chartLayout("", series.unit);
    if (!drawn) {
      drawn = true;
      await Plotly.newPlot(chart, traces, layout, PLOT_CONFIG);
    } else {
      await Plotly.react(chart, traces, layout, PLOT_CONFIG);
    }
  }

  await refresh();
  let busy = false;
  let again = false;
  async function update() {
    if (busy) { again = true; return; } // one refresh at a time; one more if events came meanwhile
    busy = true;
    try {
      do { again = false; await refresh(); } while (again);
    } catch (error) { showError(chart, error.message); } finally { busy = false; }
  }
  const controller = new AbortController();
  let timer = null;
  let gone = false;
  onLeave(() => { controller.abort(); clearInterval(timer); });
  // Events when the API sends them (each reading, with the forecast made after it); else polling.
  readEvents(`${path}/events`, (name, data) => {
    if (name === "reading") {
      if (data.forecast) stepForecasts.set(data.forecast.ts, data.forecast);
      update();
    } else if (name === "deleted") {
      gone = true;
      toast(`Stream ${streamId} was deleted`, true);
    }
  }, controller.signal).catch(() => {}).finally(() => {
    if (!controller.signal.aborted && !gone) timer = setInterval(update, STREAM_POLL_MS);
  });
}

// ---- start --------------------------------------------------------------------------------

showKeyLabel();
route();
