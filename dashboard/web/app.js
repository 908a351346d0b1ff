// The gather dashboard: plain JavaScript, no build step, no dependency.
// Everything live arrives on one server-sent event stream
// (/dashboard/events); actions and lists use the HTTP API (/v1/...).
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = {
  token: sessionStorage.getItem("gather-token") || "",
  stats: {}, series: {}, queues: null, batches: null, workers: null, snapshots: [],
  hello: null, view: "", batchID: "", batch: null,
  failures: new Map(), results: new Map(), outcomes: null,
  deadTotal: -1, deadTimer: 0,
  // pauseHold: queue name → {paused, until}: what this page set, shown
  // until the stream's reads of the broker say the same (a read begun
  // before the change may still come with the old state).
  pauseHold: new Map(), pauseError: "", controls: null,
  // queueRows: queue name → its row of the queue table, updated in place
  // every frame: a row replaced each frame would lose a click whose press
  // and release straddle a frame, and its button's keyboard focus.
  queueRows: new Map(),
};

// h builds an element: h("td", {class: "num"}, "12").
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "style") el.style.cssText = v; // CSSOM: allowed by the page's CSP, unlike a style attribute
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) {
    if (k === undefined || k === null) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
}

const fmt = new Intl.NumberFormat("en-US");
const n = (x) => fmt.format(x || 0);

function ago(t) {
  const s = Math.max(0, (Date.now() - new Date(t).getTime()) / 1000);
  if (s < 1) return "just now";
  if (s < 60) return Math.round(s) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return new Date(t).toLocaleString();
}

function ms(x) {
  if (x === null || x === undefined) return "";
  if (x === 0) return "0";
  if (x < 1) return x.toFixed(2) + " ms";
  if (x < 1000) return x.toFixed(x < 10 ? 1 : 0) + " ms";
  return (x / 1000).toFixed(1) + " s";
}

// --- the API -------------------------------------------------------------

class HTTPError extends Error {
  constructor(status, body) {
    super((body && body.detail) || "HTTP " + status);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = "Bearer " + state.token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text }; }
  if (r.status === 401) { showLogin("the token was refused"); throw new HTTPError(401, data); }
  if (!r.ok) throw new HTTPError(r.status, data);
  return data;
}

// streamURL returns path with a ticket when the server has a token: an
// EventSource cannot send the Authorization header.
async function streamURL(path) {
  if (!state.token) return path;
  const t = await api("POST", "/v1/tickets");
  return path + (path.includes("?") ? "&" : "?") + "ticket=" + encodeURIComponent(t.ticket);
}

// --- login ---------------------------------------------------------------

function showLogin(why) {
  $("#login").hidden = false;
  $("#login-error").textContent = why || "";
  for (const v of document.querySelectorAll(".view")) v.hidden = true;
  closeStreams();
  setConn("down", "token needed");
}

$("#login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.token = $("#token").value;
  $("#token").value = "";
  sessionStorage.setItem("gather-token", state.token);
  start();
});

$("#logout").addEventListener("click", () => {
  sessionStorage.removeItem("gather-token");
  state.token = "";
  location.reload();
});

// --- the live stream -----------------------------------------------------

let stream = null, streamKey = "", outcomeStream = null, retryTimer = 0, retryDelay = 500;

function setConn(cls, text) {
  const c = $("#conn");
  c.className = "conn " + cls;
  c.textContent = text;
}

function closeStreams() {
  if (stream) { stream.close(); stream = null; streamKey = ""; }
  if (outcomeStream) { outcomeStream.close(); outcomeStream = null; }
  clearTimeout(retryTimer);
}

// openStream opens the stream for the view shown: the batch list is read
// from the broker only for a page that shows it, and one batch's states
// only for a page that shows that batch.
async function openStream() {
  const q = new URLSearchParams({ view: state.view });
  if (state.view === "batch") q.set("batch", state.batchID);
  const key = q.toString();
  if (stream && streamKey === key) return;
  if (stream) stream.close();
  streamKey = key;
  let url;
  try {
    url = await streamURL("/dashboard/events?" + key);
  } catch (e) {
    if (e.status !== 401) reconnectLater();
    return;
  }
  if (streamKey !== key) return; // the view changed meanwhile
  const es = new EventSource(url);
  stream = es;
  es.onopen = () => { retryDelay = 500; setConn("live", "live"); };
  es.onerror = () => {
    if (stream !== es) return;
    if (es.readyState === EventSource.CLOSED) { // refused: a new ticket, then again
      stream = null; streamKey = "";
      setConn("down", "reconnecting");
      reconnectLater();
    } else {
      setConn("", "reconnecting");
    }
  };
  const on = (name, fn) => es.addEventListener(name, (ev) => { if (stream === es) fn(JSON.parse(ev.data)); });
  on("hello", (d) => { state.hello = d; });
  on("stats", (d) => { state.stats = d.queues || {}; renderStats(); });
  on("series", (d) => { state.series = d.queues || {}; renderCharts(); });
  on("queues", (d) => { state.queues = d; renderQueues(); });
  on("batches", (d) => { state.batches = d; renderBatches(); });
  on("workers", (d) => { state.workers = d.workers; renderWorkers(); });
  on("snapshots", (d) => { state.snapshots = d.snapshots || []; renderSnapshots(); });
  on("batch", (d) => { if (d.id === state.batchID) { state.batch = d; renderBatch(); } });
}

function reconnectLater() {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(openStream, retryDelay);
  retryDelay = Math.min(retryDelay * 2, 10000);
}

// --- routing -------------------------------------------------------------

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  let view = parts[0] || "queues";
  let id = "";
  if (view === "batches" && parts[1]) { view = "batch"; id = decodeURIComponent(parts[1]); }
  if (!["queues", "batches", "batch", "dead", "workers", "snapshots"].includes(view)) view = "queues";
  const changedBatch = id !== state.batchID;
  state.view = view;
  state.batchID = id;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("on", a.dataset.view === view || (view === "batch" && a.dataset.view === "batches"));
  }
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== "view-" + view;
  if (changedBatch) openBatch();
  if (view === "dead") loadDead();
  openStream();
}

window.addEventListener("hashchange", route);

// --- queues and charts ---------------------------------------------------

const levels = ["critical", "high", "normal", "low"];

function renderStats() {
  renderQueues();
  const total = Object.values(state.stats).reduce((a, q) => a + (q.dead_lettered || 0), 0);
  if (state.deadTotal >= 0 && total !== state.deadTotal && state.view === "dead") {
    clearTimeout(state.deadTimer); // one reload for a burst of dead letters
    state.deadTimer = setTimeout(loadDead, 300);
  }
  state.deadTotal = total;
}

// pausedOf returns whether queue q (as the broker reported it) is paused,
// with what this page set lately taking precedence; undefined when the
// broker cannot pause queues.
function pausedOf(name, q) {
  const hold = state.pauseHold.get(name);
  const seen = q ? q.paused : undefined;
  if (hold) {
    if (seen === hold.paused || Date.now() > hold.until) state.pauseHold.delete(name);
    else return hold.paused;
  }
  return seen;
}

// queueRow returns queue name's row of the queue table, made once.
function queueRow(name) {
  let r = state.queueRows.get(name);
  if (r) return r;
  const badge = h("span", { class: "badge", "data-queue-state": name });
  const button = h("button", { class: "small", "data-queue-action": name, onclick: () => setPaused(name, !r.paused) });
  const cells = Array.from({ length: 10 }, () => h("td", { class: "num" }));
  r = { paused: undefined, badge, button, cells, stateCell: h("td", { class: "nowrap" }), shown: "" };
  r.el = h("tr", { "data-queue": name }, h("td", {}, h("strong", {}, name)), r.stateCell, cells);
  state.queueRows.set(name, r);
  return r;
}

// setText sets el's text, or its one child node, when it differs.
function setText(el, text, strong) {
  const key = (strong ? "b:" : "") + text;
  if (el.dataset.shown === key) return;
  el.dataset.shown = key;
  el.replaceChildren(strong ? h("strong", {}, text) : text);
}

function renderQueues() {
  const names = new Set(Object.keys(state.stats));
  const broker = new Map();
  if (state.queues && state.queues.queues) for (const q of state.queues.queues) { broker.set(q.name, q); names.add(q.name); }
  const tb = $("#queues-table tbody");
  const order = [...names].sort();
  for (const name of order) {
    const q = broker.get(name), s = state.stats[name] || {};
    const r = queueRow(name);
    const paused = pausedOf(name, q);
    r.paused = paused;
    const shown = paused === undefined ? "none" : paused ? "paused" : "active";
    if (r.shown !== shown) {
      r.shown = shown;
      if (paused === undefined) r.stateCell.replaceChildren("–");
      else {
        r.badge.className = "badge " + (paused ? "paused" : "ok");
        r.badge.textContent = paused ? "paused" : "active";
        r.button.className = "small" + (paused ? "" : " danger");
        r.button.textContent = paused ? "Resume" : "Pause";
        r.button.title = paused ? "workers claim its tasks again" : "workers stop claiming its tasks; running ones finish; enqueues are still accepted";
        if (r.stateCell.firstChild !== r.badge) r.stateCell.replaceChildren(r.badge, " ", r.button);
      }
    }
    const c = r.cells;
    levels.forEach((l, i) => setText(c[i], q ? n(q.depth[l]) : "–"));
    setText(c[4], q ? n(q.total) : "–", !!q);
    setText(c[5], q ? n(q.in_flight) : "–");
    setText(c[6], n(s.running));
    setText(c[7], n(s.succeeded));
    setText(c[8], n(s.failed));
    setText(c[9], n(s.dead_lettered));
  }
  for (const name of state.queueRows.keys()) if (!names.has(name)) state.queueRows.delete(name);
  const rows = order.map((name) => state.queueRows.get(name).el);
  if (rows.length !== tb.children.length || rows.some((el, i) => tb.children[i] !== el)) tb.replaceChildren(...rows);
  let note = "Depth and in flight are the broker's, for every worker; the counts are this server's own workers and clients since it started. A paused queue takes enqueues, and no worker claims its tasks until it is resumed.";
  if (state.hello && !state.hello.inspector) note = "This broker cannot be inspected: depth and batches are not shown. " + note;
  if (state.queues && state.queues.error) note = "Reading the broker failed: " + state.queues.error;
  if (!rows.length) note = "No queue yet: submit a batch.";
  if (state.pauseError) note = state.pauseError;
  $("#queues-note").textContent = note;
  const sel = $("#dead-queue");
  const have = [...sel.options].map((o) => o.value).join(",");
  const want = [...names].sort();
  if (!want.includes("default")) want.unshift("default");
  if (have !== want.join(",")) {
    const cur = sel.value || "default";
    sel.replaceChildren(...want.map((q) => h("option", { value: q }, q)));
    sel.value = want.includes(cur) ? cur : "default";
  }
}

// setPaused pauses or resumes queue name through the API (with the
// page's token, like every action).
async function setPaused(name, paused) {
  state.pauseError = "";
  try {
    const r = await api("POST", "/v1/queues/" + encodeURIComponent(name) + (paused ? "/pause" : "/resume"));
    state.pauseHold.set(name, { paused: r.paused, until: Date.now() + 5000 });
  } catch (e) {
    state.pauseError = (paused ? "Pausing " : "Resuming ") + name + " failed: " + e.message;
  }
  renderQueues();
}

// loadControls shows the limits, rates and periodic tasks the server's
// program runs with (read-only: they are its flags).
async function loadControls() {
  let c;
  try { c = await api("GET", "/v1/controls"); } catch (e) { return; }
  state.controls = c;
  const scopeKind = (k) => (k ? k : h("span", { class: "muted" }, "every kind"));
  const rows = [];
  for (const l of c.limits) rows.push(h("tr", {}, h("td", {}, "concurrency limit"), h("td", {}, l.queue), h("td", {}, scopeKind(l.kind)),
    h("td", {}, "at most " + n(l.max) + " at once, across every worker")));
  for (const r of c.rates) rows.push(h("tr", {}, h("td", {}, "rate limit"), h("td", {}, r.queue), h("td", {}, scopeKind(r.kind)),
    h("td", {}, r.per_second + " a second, bursts of " + n(r.burst) + ", across every worker")));
  for (const p of c.schedules) rows.push(h("tr", {}, h("td", {}, "periodic task ", h("strong", {}, p.name)), h("td", {}, p.queue), h("td", {}, p.kind),
    h("td", {}, p.every ? "every " + p.every : h("code", {}, p.cron), p.cron ? " (" + (p.tz || "UTC") + ")" : "")));
  $("#controls-table tbody").replaceChildren(...rows);
  $("#controls-card").hidden = !rows.length;
}

function renderCharts() {
  const box = $("#charts");
  const names = Object.keys(state.series).sort();
  box.replaceChildren(...names.map((name) => {
    const s = state.series[name];
    return h("div", { class: "card" },
      h("h3", {}, "Queue " + name),
      h("div", { class: "charts" },
        chart("Tasks per second", s.t, [
          { name: "succeeded", color: "var(--done)", values: s.done },
          { name: "failed", color: "var(--failed)", values: s.failed },
          { name: "enqueued", color: "var(--accent)", values: s.enqueued, dash: true },
        ], (v) => n(Math.round(v)), spanOf(s.t)),
        chart("Latency", s.t, [
          { name: "run p50", color: "#8250df", values: s.run_p50_ms },
          { name: "run p99", color: "#bf3989", values: s.run_p99_ms },
          { name: "wait p99", color: "var(--warn)", values: s.wait_p99_ms, dash: true },
        ], ms, spanOf(s.t))));
  }));
}

// chart draws lines over time as an SVG: ts in unix seconds, each line's
// values aligned with it (null: no point).
function chart(title, ts, lines, label, spanSeconds) {
  const W = 600, H = 150, L = 56, R = 8, T = 8, B = 20;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const el = (tag, attrs) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    svg.append(e);
    return e;
  };
  let top = 0;
  for (const l of lines) for (const v of l.values || []) if (v !== null && v > top) top = v;
  top = top > 0 ? niceCeil(top) : 1;
  const t1 = ts.length ? ts[ts.length - 1] : Date.now() / 1000;
  const span = spanSeconds || Math.max(60, (state.hello ? state.hello.history_seconds : 300));
  const t0 = t1 - span;
  const x = (t) => L + ((t - t0) / span) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  for (const f of [0, 0.5, 1]) {
    el("line", { x1: L, x2: W - R, y1: y(top * f), y2: y(top * f), class: "axis" });
    const t = el("text", { x: L - 6, y: y(top * f) + 3, "text-anchor": "end" });
    t.textContent = label(top * f);
  }
  const tl = el("text", { x: L, y: H - 4 }); tl.textContent = span < 120 ? "-" + Math.round(span) + " s" : "-" + Math.round(span / 60) + " min";
  const tr = el("text", { x: W - R, y: H - 4, "text-anchor": "end" }); tr.textContent = "now";
  for (const l of lines) {
    let d = "", pen = false;
    (l.values || []).forEach((v, i) => {
      if (v === null || ts[i] < t0) { pen = false; return; }
      d += (pen ? "L" : "M") + x(ts[i]).toFixed(1) + " " + y(v).toFixed(1);
      pen = true;
    });
    if (d) el("path", { d, fill: "none", stroke: l.color, "stroke-width": 1.6, "stroke-dasharray": l.dash ? "4 3" : "", "vector-effect": "non-scaling-stroke" });
  }
  const last = (vals) => { for (let i = (vals || []).length - 1; i >= 0; i--) if (vals[i] !== null) return vals[i]; return null; };
  return h("div", { class: "chart" },
    h("h4", {}, title),
    h("div", { class: "keys" }, lines.map((l) => h("span", {}, h("i", { style: "background:" + l.color }), l.name + " " + (last(l.values) === null ? "–" : label(last(l.values)))))),
    svg);
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// --- batches -------------------------------------------------------------

function progressBar(b, big) {
  const pct = (x) => (b.size ? (100 * x) / b.size : 0).toFixed(2) + "%";
  const bar = h("div", { class: "progress" + (big ? " big" : ""), role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100,
    "aria-valuenow": Math.round(b.size ? (100 * (b.done + b.failed + b.canceled)) / b.size : 0) },
  h("span", { class: "done", style: "width:" + pct(b.done) }),
  h("span", { class: "failed", style: "width:" + pct(b.failed) }),
  h("span", { class: "canceled", style: "width:" + pct(b.canceled) }));
  return bar;
}

function batchStatus(b) {
  if (!b.finished) return "running";
  if (b.failed) return "failed";
  if (b.canceled) return "canceled";
  return "succeeded";
}

function renderBatches() {
  const d = state.batches;
  if (!d) return;
  const tb = $("#batches-table tbody");
  tb.replaceChildren(...d.batches.map((b) => {
    const st = batchStatus(b);
    return h("tr", { class: "clickable", "data-id": b.id, onclick: () => { location.hash = "#/batches/" + b.id; } },
      h("td", {}, h("a", { href: "#/batches/" + b.id }, h("code", {}, b.id.slice(0, 12)))),
      h("td", {}, b.kind), h("td", {}, b.queue), h("td", { title: b.created }, ago(b.created)),
      h("td", {}, progressBar(b)),
      h("td", { class: "num" }, n(b.done + b.failed + b.canceled) + " / " + n(b.size)),
      h("td", {}, h("span", { class: "badge " + st }, st)));
  }));
  $("#batches-note").textContent = d.error ? "Reading the broker failed: " + d.error
    : d.batches.length ? "The newest " + d.batches.length + " batches, live." : "No batch yet.";
}

$("#attach-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const id = $("#attach-id").value.trim();
  if (id) location.hash = "#/batches/" + encodeURIComponent(id);
});

function openBatch() {
  if (outcomeStream) { outcomeStream.close(); outcomeStream = null; }
  state.batch = null;
  state.failures = new Map();
  state.results = new Map();
  $("#b-grid").replaceChildren();
  $("#b-error").textContent = "";
  $("#b-failures tbody").replaceChildren();
  $("#b-results tbody").replaceChildren();
  if (!state.batchID) return;
  $("#b-id").textContent = state.batchID;
  renderBatch();
  followOutcomes(state.batchID);
}

// followOutcomes reads the batch's outcomes from the API's event stream:
// the failures with their errors and the results. A stream that the
// server refuses on reconnecting (its ticket expired) is opened again with
// a new ticket, from the last event it had (?after=); three refusals in a
// row without an event (an unknown batch) end it.
async function followOutcomes(id, after, tries) {
  let url;
  const path = "/v1/batches/" + encodeURIComponent(id) + "/events" + (after ? "?after=" + encodeURIComponent(after) : "");
  try { url = await streamURL(path); } catch (e) { return; }
  if (state.batchID !== id) return;
  const es = new EventSource(url);
  outcomeStream = es;
  let last = after || "", ended = false;
  es.addEventListener("outcome", (ev) => {
    if (outcomeStream !== es) return;
    last = ev.lastEventId || last;
    const o = JSON.parse(ev.data);
    if (o.result.ok) state.results.set(o.index, o.result.value);
    else if (o.result.error.code !== "canceled") state.failures.set(o.index, o.result.error);
    renderOutcomes();
  });
  es.addEventListener("end", () => { ended = true; es.close(); });
  es.onerror = () => {
    if (es.readyState !== EventSource.CLOSED || outcomeStream !== es || ended) return;
    outcomeStream = null;
    const n = last !== (after || "") ? 0 : (tries || 0) + 1;
    if (n < 3) setTimeout(() => { if (state.batchID === id && !outcomeStream) followOutcomes(id, last, n); }, 1000);
  };
}

let outcomesQueued = false;
function renderOutcomes() {
  if (outcomesQueued) return; // one render per animation frame for a burst
  outcomesQueued = true;
  requestAnimationFrame(() => {
    outcomesQueued = false;
    const fails = [...state.failures.entries()].sort((a, b) => a[0] - b[0]).slice(0, 200);
    $("#b-failures tbody").replaceChildren(...fails.map(([i, e]) => h("tr", {},
      h("td", { class: "num" }, i), h("td", {}, h("code", {}, e.code)), h("td", { class: "err" }, e.message), h("td", { class: "num" }, e.attempts || ""))));
    $("#b-failures-note").textContent = state.failures.size > 200 ? "the first 200 of " + n(state.failures.size) : state.failures.size ? "" : "none yet";
    const res = [...state.results.entries()].sort((a, b) => a[0] - b[0]).slice(0, 100);
    $("#b-results tbody").replaceChildren(...res.map(([i, v]) => h("tr", {},
      h("td", { class: "num" }, i), h("td", { class: "value mono result" }, JSON.stringify(v)))));
    $("#b-results-note").textContent = state.results.size > 100 ? "the first 100 of " + n(state.results.size) : state.results.size ? "" : "none yet";
  });
}

function renderBatch() {
  const b = state.batch;
  const cancel = $("#b-cancel");
  if (!b) {
    $("#b-meta").textContent = "loading…";
    $("#b-counts").textContent = "";
    cancel.disabled = true;
    return;
  }
  if (b.error) {
    $("#b-error").textContent = b.error;
    $("#b-meta").textContent = "";
    cancel.disabled = true;
    return;
  }
  $("#b-error").textContent = "";
  const st = batchStatus(b);
  $("#b-meta").replaceChildren(
    h("span", { class: "badge " + st, id: "b-status" }, st), "  kind ", h("strong", {}, b.kind), " · queue ", h("strong", {}, b.queue),
    " · created ", new Date(b.created).toLocaleString());
  $("#b-progress").replaceWith(Object.assign(progressBar(b, true), { id: "b-progress" }));
  const ended = b.done + b.failed + b.canceled;
  const running = (b.states.match(/r/g) || []).length;
  $("#b-counts").textContent = `${n(ended)} of ${n(b.size)} (${b.size ? Math.floor((100 * ended) / b.size) : 0}%) · ${n(b.done)} done · ${n(b.failed)} failed · ${n(b.canceled)} canceled · ${n(running)} running`;
  cancel.disabled = b.finished;
  const grid = $("#b-grid");
  grid.classList.toggle("dense", b.states.length > 2000);
  // Cells are reused: only their class changes between updates.
  while (grid.childElementCount < b.states.length) grid.append(h("i", { class: "cell p" }));
  for (let i = 0; i < b.states.length; i++) {
    const c = grid.children[i], cls = "cell " + b.states[i];
    if (c.className !== cls) { c.className = cls; c.title = "#" + i + " " + ({ p: "pending", r: "running", d: "done", f: "failed", c: "canceled" })[b.states[i]]; }
  }
  $("#b-trunc").textContent = b.truncated ? "The grid shows the first " + n(b.states.length) + " of " + n(b.size) + " tasks." : "";
}

$("#b-cancel").addEventListener("click", async () => {
  const id = state.batchID;
  $("#b-cancel").disabled = true;
  try {
    await api("POST", "/v1/batches/" + encodeURIComponent(id) + "/cancel");
  } catch (e) {
    $("#b-error").textContent = "Cancelling failed: " + e.message;
    $("#b-cancel").disabled = false;
  }
});

// --- dead letters --------------------------------------------------------

function deadQuery() {
  const q = new URLSearchParams({ queue: $("#dead-queue").value || "default", limit: "200" });
  if ($("#dead-kind").value.trim()) q.set("kind", $("#dead-kind").value.trim());
  if ($("#dead-error").value.trim()) q.set("error", $("#dead-error").value.trim());
  return q;
}

let deadSeq = 0;
async function loadDead() {
  const seq = ++deadSeq;
  let d;
  try { d = await api("GET", "/v1/dead-letters?" + deadQuery()); } catch (e) {
    if (seq === deadSeq) $("#dead-note").textContent = "Listing dead letters failed: " + e.message;
    return;
  }
  if (seq !== deadSeq) return;
  const open = new Set([...document.querySelectorAll("#dead-table tr.detail")].map((r) => r.dataset.id));
  const rows = [];
  for (const dl of d.dead_letters) {
    const detail = h("tr", { class: "detail", "data-id": dl.id, hidden: !open.has(dl.id) },
      h("td", { colspan: 6 },
        h("strong", {}, "Attempts"),
        h("ol", { class: "attempts" }, dl.attempts.map((a) => h("li", {}, h("span", { class: "muted" }, new Date(a.at).toLocaleTimeString() + "  "), h("span", { class: "err" }, a.error)))),
        h("strong", {}, "Input"), h("pre", { class: "json" }, JSON.stringify(dl.input, null, 2))));
    rows.push(h("tr", { class: "clickable dead-row", "data-id": dl.id, onclick: (e) => { if (e.target.tagName !== "BUTTON") detail.hidden = !detail.hidden; } },
      h("td", {}, h("code", {}, dl.id.slice(0, 12) + "…/" + dl.index)),
      h("td", {}, dl.kind),
      h("td", { class: "num" }, dl.attempts.length + " / " + dl.max_attempts),
      h("td", { class: "err" }, dl.last_error),
      h("td", { title: dl.at }, ago(dl.at)),
      h("td", {}, h("button", { class: "small redrive", onclick: () => redrive([dl.id]) }, "Re-drive"))), detail);
  }
  $("#dead-table tbody").replaceChildren(...rows);
  $("#dead-note").textContent = d.dead_letters.length ? (d.next ? "The first " + d.dead_letters.length + " that match; more follow." : n(d.dead_letters.length) + (d.dead_letters.length === 1 ? " dead letter matches." : " dead letters match.")) : "No dead letter matches.";
  $("#dead-redrive-all").disabled = !d.dead_letters.length;
}

$("#dead-form").addEventListener("submit", (e) => { e.preventDefault(); loadDead(); });

// redrive re-runs the dead letters ids, each as a new batch.
async function redrive(ids) {
  const made = [], failed = [];
  for (const id of ids) {
    try {
      const r = await api("POST", "/v1/dead-letters/" + encodeURIComponent(id) + "/redrive");
      made.push(r.id);
    } catch (e) { failed.push(id + ": " + e.message); }
  }
  const note = $("#dead-notice");
  note.hidden = false;
  note.replaceChildren();
  if (made.length === 1) note.append("Re-driven as batch ", h("a", { href: "#/batches/" + made[0], id: "redriven" }, made[0]), ".");
  else if (made.length) note.append("Re-driven " + made.length + " dead letters, each as a batch of its own; see ", h("a", { href: "#/batches" }, "Batches"), ".");
  if (failed.length) note.append(" " + failed.length + " failed: " + failed.slice(0, 3).join("; "));
  loadDead();
}

$("#dead-redrive-all").addEventListener("click", async () => {
  const btn = $("#dead-redrive-all");
  btn.disabled = true;
  const ids = [];
  let after = "";
  // Collect every match first (re-driving removes them, moving the pages).
  for (let i = 0; i < 50; i++) {
    const q = deadQuery();
    q.set("limit", "1000");
    if (after) q.set("after", after);
    let d;
    try { d = await api("GET", "/v1/dead-letters?" + q); } catch (e) { break; }
    ids.push(...d.dead_letters.map((x) => x.id));
    if (!d.next) break;
    after = d.next;
  }
  if (ids.length && confirm("Re-drive " + ids.length + " dead letters?")) await redrive(ids);
  btn.disabled = false;
});

// --- workers -------------------------------------------------------------

function renderWorkers() {
  const ws = state.workers;
  if (!ws) {
    $("#workers-note").textContent = "This server does not hear worker heartbeats.";
    return;
  }
  $("#workers-table tbody").replaceChildren(...ws.map((w) => h("tr", {},
    h("td", {}, h("span", { class: "dot" + (w.connected ? " on" : ""), title: w.connected ? "connected" : "lost" })),
    h("td", {}, h("code", {}, w.id.slice(0, 10)), w.stopped ? h("span", { class: "badge canceled" }, "stopped") : w.connected ? "" : h("span", { class: "badge lost" }, "lost")),
    h("td", {}, w.host), h("td", { class: "num" }, w.pid), h("td", {}, (w.queues || []).join(", ")),
    h("td", { class: "num" }, w.concurrency), h("td", { class: "num" }, n(w.running)), h("td", { class: "num" }, n(w.processed)),
    h("td", { class: "num" }, n(w.failed)), h("td", { title: w.last_seen }, ago(w.last_seen)))));
  $("#workers-note").textContent = (ws.length ? ws.filter((w) => w.connected).length + " connected. " : "No worker heard from yet. ") +
    "Each worker process sends a heartbeat every 2 s; one missing for 6 s is shown as lost.";
}

// --- snapshots -----------------------------------------------------------

const palette = ["#1f6feb", "#bf3989", "#2da44e", "#d4a72c", "#8250df", "#cf222e", "#0a7f8c", "#57606a"];

function renderSnapshots() {
  const box = $("#snapshots");
  $("#snapshots-note").hidden = state.snapshots.length > 0;
  box.replaceChildren(...state.snapshots.map((s) => {
    const complete = s.complete ? "complete" : "incomplete";
    const names = Object.keys(s.lag_history || {});
    const card = h("div", { class: "card snapshot", "data-name": s.name },
      h("div", { class: "snap-head" }, h("h2", {}, s.name), h("span", { class: "badge " + complete }, complete),
        h("span", { class: "muted" }, "cut #" + s.seq + " as of " + (s.time ? new Date(s.time).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3, hour12: false }) : "–"))),
      h("div", { class: "two", style: "margin-top:12px" },
        h("div", {}, h("table", { class: "grid-table sources" },
          h("thead", {}, h("tr", {}, h("th", {}, "source"), h("th", {}, "state"), h("th", {}, "why"), h("th", { class: "num" }, "lag"))),
          h("tbody", {}, s.sources.map((src) => h("tr", { "data-source": src.name },
            h("td", {}, h("strong", {}, src.name), src.required ? "" : h("span", { class: "muted" }, " optional")),
            h("td", {}, h("span", { class: "badge state " + src.state.replace(/ /g, "-") }, src.state)),
            h("td", { class: "muted why" }, why(src)),
            h("td", { class: "num" }, src.lag_ms ? ms(src.lag_ms) : "")))))),
        chart("Lag per source", (s.lag_history[names[0]] || { t: [] }).t, names.map((name, i) => ({
          name, color: palette[i % palette.length], values: alignLag(s.lag_history, names[0], name),
        })), ms, spanOf((s.lag_history[names[0]] || { t: [] }).t))));
    if (s.table) {
      card.append(h("div", { class: "table-wrap" }, h("table", { class: "grid-table snap-table" },
        h("thead", {}, h("tr", {}, s.table.columns.map((c) => h("th", {}, c)))),
        h("tbody", {}, s.table.rows.map((r) => h("tr", {}, r.map((c) => h("td", { class: "mono" }, c))))))));
    }
    return card;
  }));
}

// why says in a few words why a source holds a cut back, from its fields
// (the server's reason when the state is another).
function why(src) {
  const clock = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  switch (src.state) {
    case "current": return "";
    case "stale": return "stale by " + ms(src.lag_ms);
    case "silent": return "silent since " + clock(src.since) + " (" + ago(src.since) + ")";
    case "gapped": return "missing " + (src.missing || "?") + " (" + n(src.missing_count) + " in all), " + n(src.buffered) + " waiting behind the gap";
  }
  return src.reason || src.state;
}

// alignLag returns source name's lag on the seconds of source ref.
// spanOf returns the seconds a chart of the times ts spans: those it has,
// at least a minute, at most the history.
function spanOf(ts) {
  const full = state.hello ? state.hello.history_seconds : 300;
  if (!ts || ts.length < 2) return 60;
  return Math.min(full, Math.max(60, ts[ts.length - 1] - ts[0]));
}

function alignLag(hist, ref, name) {
  const r = hist[ref], s = hist[name], at = new Map();
  s.t.forEach((t, i) => at.set(t, s.ms[i]));
  return r.t.map((t) => (at.has(t) ? at.get(t) : null));
}

// --- start ---------------------------------------------------------------

async function start() {
  $("#login").hidden = true;
  $("#logout").hidden = !state.token;
  // Ask whether the token is needed and good without a 401, which a
  // browser logs as an error.
  try {
    const s = await api("GET", "/dashboard/session");
    if (!s.authenticated) {
      showLogin(state.token ? "The token was refused." : "");
      return;
    }
  } catch (e) {
    // The server is unreachable: the stream reconnects and says so.
  }
  route();
  loadControls();
}

start();
