// gw admin page: plain JavaScript, no framework, no build step.
// Text from the database is only ever put in the page with textContent.
"use strict";

const POLL_MS = 4000;
const state = {
  session: null,
  paused: false,
  filters: { state: "", task: "", queue: "", key: "", error: "" },
  offset: 0,
  limit: 50,
  total: 0,
  pageIds: [],
  selected: new Set(),
  detailId: null,
  timer: null,
  chartWindow: "hour",
  chartsAt: 0,
  history: { task: "", failed: false },
};
// The chart series aggregate the history; they are read again at most this often.
const CHARTS_MS = 30000;

const $ = (sel) => document.querySelector(sel);
const $$ = (sel) => Array.from(document.querySelectorAll(sel));
// Read-only pages have no write controls at all, so wiring skips what is not there.
const on = (sel, type, handler) => { const node = $(sel); if (node) node.addEventListener(type, handler); };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// --- talking to the API

class ApiError extends Error {}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", headers: { Accept: "application/json" } };
  if (options.body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.headers["X-CSRF-Token"] = state.session ? state.session.csrf_token : "";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch("api/" + path, init);
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (!response.ok) {
    throw new ApiError((data && data.error) || `${response.status} ${response.statusText}`);
  }
  return data;
}

function toast(message, bad) {
  const node = $("#toast");
  node.textContent = message;
  node.classList.toggle("bad", Boolean(bad));
  node.classList.remove("hidden");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => node.classList.add("hidden"), bad ? 8000 : 4000);
}

// --- formatting

function ago(iso) {
  if (!iso) return "";
  const seconds = Math.round((Date.parse(iso) - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  const text = abs < 60 ? `${abs}s` : abs < 3600 ? `${Math.round(abs / 60)}m`
    : abs < 86400 ? `${Math.round(abs / 3600)}h` : `${Math.round(abs / 86400)}d`;
  return seconds > 0 ? `in ${text}` : `${text} ago`;
}

// The exact time, to the second, in the browser's time zone: 2026-01-02 09:03:04 UTC+01:00.
function exact(iso) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  const offset = -d.getTimezoneOffset();
  const zone = offset === 0 ? "UTC" : `UTC${offset > 0 ? "+" : "-"}`
    + `${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${zone}`;
}

// Every time on the page reads the same way: relative, with the exact time on hover.
function time(iso) {
  return iso ? el("time", { datetime: iso, title: exact(iso) }, ago(iso))
    : el("span", { class: "muted" }, "–");
}

// In the detail panel the exact time is also written out beside the relative one.
function timeWithExact(iso) {
  return iso ? el("span", {}, time(iso), el("span", { class: "exact" }, exact(iso))) : time(iso);
}

// The list carries only the start of each last_error; the detail panel has all of it.
function errorCell(job) {
  const text = job.last_error_excerpt || "";
  const more = job.last_error_truncated ? "…" : "";
  const hint = more ? "\n(open the job for the whole error)" : "";
  return el("td", { class: "err", title: text ? text + more + hint : null }, text + more);
}

function stateBadge(name) {
  return el("span", { class: `state state-${name}` }, name);
}

function fill(tbody, rows, empty, columns) {
  tbody.replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: columns, class: "muted" }, empty))]));
}

// --- sections

async function loadOverview() {
  const data = await api("overview");
  for (const key of ["ready", "scheduled", "locked", "failed", "total"]) {
    $(`#count-${key}`).textContent = data.counts[key];
  }
  const row = (name, c) => el("tr", {}, el("td", {}, name || "(none)"),
    ...["ready", "scheduled", "locked", "failed"].map((k) => el("td", { class: "num" }, c[k])));
  fill($("#by-task tbody"), data.by_task.map((c) => row(c.task, c)), "no jobs", 5);
  fill($("#by-queue tbody"), data.by_queue.map((c) => row(c.queue, c)), "no queued jobs", 5);
}

function jobQuery() {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(state.filters)) if (value) params.set(key, value);
  params.set("limit", state.limit);
  params.set("offset", state.offset);
  return params.toString();
}

async function loadJobs() {
  let data;
  try {
    data = await api("jobs?" + jobQuery());
    $("#jobs-error").classList.add("hidden");
  } catch (error) {
    $("#jobs-error").textContent = error.message;
    $("#jobs-error").classList.remove("hidden");
    return;
  }
  state.total = data.total;
  state.pageIds = data.jobs.map((job) => job.id);
  const focused = document.activeElement && document.activeElement.dataset
    ? document.activeElement.dataset.focusKey : null;
  const writable = !state.session.read_only;
  const rows = data.jobs.map((job) => {
    const checked = state.selected.has(job.id);
    const classes = [checked ? "sel" : "", job.id === state.detailId ? "open" : ""];
    return el("tr", { class: classes.join(" ").trim(), dataset: { id: job.id } },
      writable ? el("td", {}, el("input", {
        type: "checkbox", checked, "aria-label": `Select job ${job.id}`,
        dataset: { focusKey: `check-${job.id}` },
        onchange: (event) => toggleSelect(job.id, event.target.checked),
      })) : null,
      el("td", {}, el("button", {
        type: "button", class: "link", dataset: { focusKey: `open-${job.id}` },
        onclick: () => openDetail(job.id), title: "Show details",
      }, job.id)),
      el("td", {}, job.task),
      el("td", {}, job.queue || ""),
      el("td", {}, stateBadge(job.state)),
      el("td", { class: "num" }, `${job.attempts}/${job.max_attempts}`),
      el("td", {}, time(job.run_at)),
      el("td", {}, job.key || ""),
      errorCell(job),
    );
  });
  fill($("#job-table tbody"), rows, "no jobs match", writable ? 9 : 8);
  const first = data.total ? state.offset + 1 : 0;
  $("#page-info").textContent =
    `${first}–${state.offset + data.jobs.length} of ${data.total}`;
  $("#prev").disabled = state.offset === 0;
  $("#next").disabled = state.offset + data.jobs.length >= data.total;
  if (focused) {
    const again = document.querySelector(`[data-focus-key="${focused}"]`);
    if (again) again.focus();
  }
  updateSelection();
}

async function loadQueues() {
  const data = await api("queues");
  fill($("#queue-table tbody"), data.queues.map((q) => el("tr", {},
    el("td", {}, q.queue), el("td", { class: "num" }, q.job_count),
    el("td", {}, q.locked_by || ""), el("td", {}, time(q.locked_at)),
  )), "no queues", 4);
}

// The longest event-loop stall a worker reported (null: none reported).
function stall(value) {
  return value === null || value === undefined ? el("span", { class: "muted" }, "–")
    : seconds(value);
}

// As `gw workers list`: stale (late and its session gone: a sweep takes its jobs), late
// with its session alive (stalled or busy: never swept), or alive.
function workerState(w) {
  if (w.stale) return el("td", { class: "stale", title: "late, session gone" }, "stale");
  if (w.late) {
    const why = "heartbeat late; its session still holds its lock, so it is not swept";
    return el("td", { class: "late", title: why }, "late (session alive)");
  }
  return el("td", { title: w.session_alive ? "session alive" : "session gone" }, "alive");
}

async function loadWorkers() {
  const data = await api("workers");
  const rows = data.workers.map((w) => el("tr", { dataset: { worker: w.id } },
    el("td", { title: w.tasks.join(", ") }, w.id),
    el("td", { title: w.pool_connections === null ? null
      : `connections: ${w.pool_connections} pooled + ${w.session_connections} own` },
    `${w.host}/${w.pid}`),
    el("td", { title: `every ${w.heartbeat_interval}s; late after ${w.threshold}s` },
      time(w.last_heartbeat_at)),
    el("td", { class: "num stall", title: "longest event-loop stall reported recently" },
      stall(w.longest_stall)),
    el("td", { class: "num" }, w.jobs_held),
    workerState(w),
  ));
  for (const holder of data.unregistered_lock_holders) {
    rows.push(el("tr", {}, el("td", {}, holder.id), el("td", { class: "muted" }, "not registered"),
      el("td", {}, time(holder.oldest_lock_at)), el("td", { class: "muted" }, "–"),
      el("td", { class: "num" }, holder.jobs_held), el("td", { class: "muted" }, "4h lock rule")));
  }
  fill($("#worker-table tbody"), rows, "no workers", 6);
}

async function loadCrontabs() {
  const data = await api("crontabs");
  const rows = data.crontabs.map((c) => el("tr", {},
    el("td", { title: c.pattern ? `${c.pattern} ${c.task}` : "" }, c.id),
    el("td", {}, time(c.last_execution)),
    el("td", {}, c.next_run ? time(c.next_run)
      : el("span", { class: "muted" }, data.crontab_loaded ? "not in crontab" : "no crontab loaded")),
  ));
  for (const id of data.not_yet_known) {
    rows.push(el("tr", {}, el("td", {}, id), el("td", { class: "muted" }, "not known yet"),
      el("td", {}, "")));
  }
  fill($("#cron-table tbody"), rows, "no known crontabs", 3);
}

// --- charts (inline SVG; no library)

const SVG_NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

function clock(ms) {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

// The smallest of 1, 2, 5 × 10^n at or above the largest value (1 for an empty chart).
function ceiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= value);
}

function number(value) {
  if (value >= 100 || Number.isInteger(value)) return String(Math.round(value));
  return value >= 1 ? value.toFixed(1) : value.toPrecision(2);
}

// One chart: lines over time, a dot (with a tooltip) for each point that has data.
// series: [{ name, points: [[ms, value or null]], dots: (value) => bool }]
function drawChart(figure, from, to, series) {
  const W = 320, H = 132, L = 34, R = 8, T = 8, B = 18;
  const values = series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => v !== null);
  const top = ceiling(Math.max(0, ...values));
  const x = (t) => L + ((t - from) / Math.max(1, to - from)) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `${figure.querySelector("figcaption").textContent}: ${values.length} points` });
  for (const v of [0, top / 2, top]) {
    root.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      svg("text", { class: "tick", x: L - 4, y: y(v) + 3, "text-anchor": "end" }, number(v)));
  }
  root.append(svg("text", { class: "tick", x: L, y: H - 4 }, clock(from)),
    svg("text", { class: "tick", x: W - R, y: H - 4, "text-anchor": "end" }, clock(to)));
  let dots = 0;
  for (const s of series) {
    // A gap in the data (null) breaks the line.
    let run = [];
    const flush = () => {
      if (run.length > 1) root.append(svg("polyline", { class: `s-${s.name}`, points: run.join(" ") }));
      run = [];
    };
    for (const [t, v] of s.points) {
      if (v === null) { flush(); continue; }
      run.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
      if (s.dots(v)) {
        dots += 1;
        root.append(svg("circle", { class: `pt s-${s.name}`, cx: x(t), cy: y(v), r: 2,
          "data-series": s.name, "data-value": v },
          svg("title", {}, `${clock(t)} ${s.name}: ${number(v)}`)));
      }
    }
    flush();
  }
  figure.querySelector(".plot").replaceChildren(root);
  figure.dataset.points = String(dots);
  figure.querySelector(".legend").replaceChildren(...series.map((s) =>
    el("span", {}, el("span", { class: `swatch s-${s.name}` }), s.name)));
}

async function loadCharts(force) {
  if (!force && Date.now() - state.chartsAt < CHARTS_MS) return;
  const data = await api(`charts?window=${state.chartWindow}`);
  state.chartsAt = Date.now();
  const bucket = data.bucket_seconds * 1000;
  const to = Date.parse(data.now);
  const from = Math.floor((to - data.window_seconds * 1000) / bucket) * bucket;
  const slots = [];
  for (let t = from; t <= to; t += bucket) slots.push(t);
  const at = (rows) => new Map(rows.map((row) => [Date.parse(row.t), row]));
  const outcomes = at(data.outcomes), wait = at(data.wait), depth = at(data.depth);
  const perMinute = 60000 / bucket;
  // Outcomes are counts: a bucket with none is 0. Wait and depth have no value there.
  const counted = (name) => ({ name, dots: (v) => v > 0, points: slots.map((t) =>
    [t, outcomes.has(t) ? outcomes.get(t)[name] * perMinute : 0]) });
  const sampled = (map, name) => ({ name, dots: () => true, points: slots.map((t) =>
    [t, map.has(t) && map.get(t)[name] !== null ? map.get(t)[name] : null]) });
  drawChart($("#chart-outcomes"), from, to, [counted("completed"), counted("failed")]);
  drawChart($("#chart-wait"), from, to, [sampled(wait, "p50"), sampled(wait, "p95")]);
  drawChart($("#chart-depth"), from, to,
    ["ready", "scheduled", "locked"].map((name) => sampled(depth, name)));
  $("#charts-note").textContent = !data.available
    ? "no history table: run `gw migrate`"
    : data.outcomes.length || data.depth.length ? ""
    : "no history yet: run workers with history_retention (e.g. 7d)";
}

function seconds(value) {
  if (value === null || value === undefined) return "";
  return value < 1 ? `${Math.round(value * 1000)}ms` : `${value.toFixed(1)}s`;
}

async function loadHistory() {
  const params = new URLSearchParams({ limit: "50" });
  if (state.history.task) params.set("task", state.history.task);
  if (state.history.failed) params.set("failed", "true");
  const data = await api(`history?${params}`);
  const rows = data.entries.map((entry) => el("tr", { dataset: { job: entry.job_id } },
    el("td", { class: "num" }, entry.job_id),
    el("td", {}, entry.task_identifier),
    el("td", { class: `outcome-${entry.outcome}` }, entry.outcome),
    el("td", {}, time(entry.finished_at)),
    el("td", { class: "num" }, seconds(entry.duration)),
    el("td", { class: "num" }, seconds(entry.wait)),
    el("td", { class: "num" }, `${entry.attempts}/${entry.max_attempts}`),
    el("td", {}, entry.worker_id || "(by hand)"),
    el("td", { class: "err", title: entry.last_error || null },
      entry.outcome === "failed" ? (entry.last_error || "").split("\n")[0] : "")));
  fill($("#history-table tbody"), rows,
    data.available ? "no history (workers record it with history_retention)"
      : "no history table: run `gw migrate`", 9);
}

function setChartWindow(name) {
  state.chartWindow = name;
  for (const button of $$("[data-window]")) {
    button.setAttribute("aria-pressed", String(button.dataset.window === name));
  }
  loadCharts(true).catch((error) => toast(error.message, true));
}

async function refresh(force) {
  const results = await Promise.allSettled([loadOverview(), loadCharts(force === true),
    loadJobs(), loadHistory(), loadQueues(), loadWorkers(), loadCrontabs()]);
  const failed = results.find((r) => r.status === "rejected");
  $("#updated").textContent = failed
    ? `refresh failed: ${failed.reason.message}`
    : `updated ${new Date().toLocaleTimeString()}${state.paused ? " (paused)" : ""}`;
  if (state.detailId !== null) await loadDetail(state.detailId, true);
}

function schedule() {
  clearInterval(state.timer);
  state.timer = state.paused ? null : setInterval(() => { if (!document.hidden) refresh(); }, POLL_MS);
  $("#pause").textContent = state.paused ? "Resume" : "Pause";
  $("#pause").setAttribute("aria-pressed", String(state.paused));
}

// --- selection and actions

function toggleSelect(id, on) {
  if (on) state.selected.add(id); else state.selected.delete(id);
  const row = document.querySelector(`#job-table tr[data-id="${id}"]`);
  if (row) row.classList.toggle("sel", on);
  updateSelection();
}

function updateSelection() {
  if (state.session.read_only) return;
  $("#selected-count").textContent = `${state.selected.size} selected`;
  for (const button of $$("[data-bulk]")) button.disabled = state.selected.size === 0;
  const all = state.pageIds.length > 0 && state.pageIds.every((id) => state.selected.has(id));
  $("#select-page").checked = all;
}

function selectPage(on) {
  for (const id of state.pageIds) if (on) state.selected.add(id); else state.selected.delete(id);
  for (const box of $$("#job-table tbody input[type=checkbox]")) box.checked = on;
  for (const row of $$("#job-table tbody tr")) row.classList.toggle("sel", on);
  updateSelection();
}

const ACTION_NAMES = {
  run_now: "run now", complete: "complete", fail: "permanently fail", reschedule: "reschedule",
  cancel: "cancel",
};

const CONFIRMED = new Set(["complete", "fail", "cancel"]);

const CANCEL_OUTCOMES = {
  cancelled: "cancelled",
  requested: "cancel requested (running: its worker aborts it)",
  marked: "marked only (running on a worker gw cannot interrupt; it will not run again)",
  already_failed: "already failed",
  not_found: "gone",
};

function summarizeCancel(result) {
  const counts = new Map();
  for (const item of result.outcomes) {
    counts.set(item.outcome, (counts.get(item.outcome) || 0) + 1);
  }
  const parts = Array.from(counts, ([outcome, n]) => `${n} ${CANCEL_OUTCOMES[outcome]}`);
  return `cancel: ${parts.join("; ")}`;
}

function summarize(action, result) {
  if (action === "cancel") return summarizeCancel(result);
  const skipped = result.skipped.length
    ? `; ${result.skipped.length} skipped (locked or gone)` : "";
  return `${ACTION_NAMES[action]}: ${result.changed.length} job(s)${skipped}`;
}

async function bulk(action) {
  const ids = Array.from(state.selected);
  if (!ids.length) return;
  const body = { action, ids };
  if (action === "reschedule") {
    const local = $("#bulk-run-at").value;
    if (!local) { toast("pick a time to reschedule to", true); $("#bulk-run-at").focus(); return; }
    body.run_at = new Date(local).toISOString();
  }
  if (CONFIRMED.has(action) && !confirm(`${ACTION_NAMES[action]} ${ids.length} job(s)?`)) return;
  try {
    const result = await api("jobs/actions", { body });
    toast(summarize(action, result));
    state.selected.clear();
  } catch (error) { toast(error.message, true); }
  await refresh();
}

async function jobAction(id, action) {
  if (CONFIRMED.has(action) && !confirm(`${ACTION_NAMES[action]} job ${id}?`)) return;
  try {
    const result = await api(`jobs/${id}/${action.replace("_", "-")}`, { body: {} });
    toast(`job ${id}: ` + summarize(action, result));
  } catch (error) { toast(error.message, true); }
  await refresh();
}

// --- detail panel

async function loadDetail(id, quiet) {
  let job;
  try { job = await api(`jobs/${id}`); } catch (error) {
    if (quiet) {
      $("#detail-h").textContent = `Job ${id} (gone)`;
      if ($("#detail-actions")) $("#detail-actions").classList.add("hidden");
      return;
    }
    toast(error.message, true);
    return;
  }
  // Polling re-reads the job; leave the panel alone (and any text selected in it) when
  // nothing changed.
  const stamp = JSON.stringify(job);
  if (quiet && stamp === state.detailStamp) {
    for (const node of $$("#detail-fields time")) node.textContent = ago(node.dateTime);
    return;
  }
  state.detailStamp = stamp;
  $("#detail-h").textContent = `Job ${job.id}`;
  if ($("#detail-actions")) $("#detail-actions").classList.remove("hidden");
  const fields = [
    ["task", job.task], ["queue", job.queue || "–"], ["state", stateBadge(job.state)],
    ["attempts", `${job.attempts} of ${job.max_attempts}`], ["priority", job.priority],
    ["run at", timeWithExact(job.run_at)], ["key", job.key || "–"],
    ["locked by", job.locked_by || "–"], ["locked at", timeWithExact(job.locked_at)],
    ["created", timeWithExact(job.created_at)], ["updated", timeWithExact(job.updated_at)],
    ["revision", job.revision],
    ["flags", job.flags.length ? job.flags.join(", ") : "–"],
  ];
  $("#detail-fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  $("#detail-error").textContent = job.last_error || "(none)";
  $("#detail-payload").textContent = JSON.stringify(job.payload, null, 2);
}

async function openDetail(id) {
  state.detailId = id;
  state.detailStamp = null;
  state.returnFocus = document.activeElement;
  markOpenRow();
  $("#detail").classList.remove("hidden");
  await loadDetail(id, false);
  // Scroll no further than needed: on a narrow screen, where the panel comes after the
  // table, the end of the table stays in view when the panel fits.
  $("#detail").focus({ preventScroll: true });
  $("#detail").scrollIntoView({ block: "nearest" });
}

function markOpenRow() {
  for (const row of $$("#job-table tbody tr[data-id]")) {
    row.classList.toggle("open", Number(row.dataset.id) === state.detailId);
  }
}

function closeDetail() {
  state.detailId = null;
  markOpenRow();
  $("#detail").classList.add("hidden");
  if (state.returnFocus && document.body.contains(state.returnFocus)) state.returnFocus.focus();
}

// --- maintenance

async function maintenance(operation, body) {
  const out = $("#m-result");
  try {
    const result = await api(`maintenance/${operation}`, { body });
    out.textContent = JSON.stringify(result, null, 2);
    toast(`${operation}: done`);
  } catch (error) {
    out.textContent = error.message;
    toast(error.message, true);
  }
  out.classList.remove("hidden");
  await refresh();
}

// --- wiring

function applyFilters(changes) {
  Object.assign(state.filters, changes);
  for (const [key, value] of Object.entries(state.filters)) $(`#filter-${key}`).value = value;
  for (const tile of $$(".tile")) tile.classList.toggle("active", tile.dataset.state === state.filters.state);
  state.offset = 0;
  loadJobs();
}

function wire() {
  on("#filters", "submit", (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    applyFilters(Object.fromEntries(["state", "task", "queue", "key", "error"]
      .map((k) => [k, String(form.get(k) || "").trim()])));
  });
  on("#filter-clear", "click", () =>
    applyFilters({ state: "", task: "", queue: "", key: "", error: "" }));
  on("#filter-state", "change", (event) => applyFilters({ state: event.target.value }));
  for (const tile of $$(".tile")) {
    tile.addEventListener("click", () => applyFilters({ state: tile.dataset.state }));
  }
  on("#prev", "click", () => page(-1));
  on("#next", "click", () => page(1));
  on("#select-page", "change", (event) => selectPage(event.target.checked));
  for (const button of $$("[data-bulk]")) {
    button.addEventListener("click", () => bulk(button.dataset.bulk));
  }
  for (const button of $$("[data-action]")) {
    button.addEventListener("click", () => jobAction(state.detailId, button.dataset.action));
  }
  on("#remove-key", "submit", async (event) => {
    event.preventDefault();
    const key = $("#remove-key-input").value.trim();
    if (!key || !confirm(`remove the job with key ${key}?`)) return;
    try {
      const result = await api("jobs/remove-by-key", { body: { key } });
      toast(`removed job ${result.removed} (key ${key})`);
      $("#remove-key-input").value = "";
    } catch (error) { toast(error.message, true); }
    await refresh();
  });
  on("#detail-close", "click", closeDetail);
  on("#pause", "click", togglePause);
  on("#refresh", "click", () => refresh(true));
  for (const button of $$("[data-window]")) {
    button.addEventListener("click", () => setChartWindow(button.dataset.window));
  }
  on("#history-filters", "submit", (event) => {
    event.preventDefault();
    state.history = { task: $("#history-task").value.trim(), failed: $("#history-failed").checked };
    loadHistory().catch((error) => toast(error.message, true));
  });
  on("#help-toggle", "click", () => $("#help").classList.toggle("hidden"));
  on("#m-migrate", "click", () => maintenance("migrate", {}));
  on("#m-cleanup", "click", () => maintenance("cleanup", {
    tasks: $$("input[name=cleanup]:checked").map((box) => box.value),
  }));
  on("#m-unlock", "click", () => {
    const ids = $("#m-unlock-ids").value.split(/[\s,]+/).filter(Boolean);
    if (!ids.length) { toast("enter the worker ids to unlock", true); return; }
    if (confirm(`force unlock ${ids.join(", ")}? Only do this for workers that are dead.`)) {
      maintenance("force-unlock", { worker_ids: ids });
    }
  });
  on("#m-sweep", "click", () => {
    const body = { dry_run: $("#m-sweep-dry").checked };
    const threshold = $("#m-sweep-threshold").value;
    if (threshold !== "") body.threshold = Number(threshold);
    maintenance("sweep", body);
  });
  document.addEventListener("keydown", onKey);
}

function page(direction) {
  const next = state.offset + direction * state.limit;
  if (next < 0 || (direction > 0 && next >= state.total)) return;
  state.offset = next;
  loadJobs();
}

function togglePause() {
  state.paused = !state.paused;
  schedule();
  $("#updated").textContent = state.paused ? "paused" : "live";
}

function onKey(event) {
  // Shortcuts stay out of the way while typing (but work on a focused checkbox or button).
  const typing = event.target.closest(
    "select, textarea, input:not([type=checkbox]):not([type=radio]):not([type=button])");
  if (event.key === "Escape") {
    if (state.detailId !== null) closeDetail();
    else if (typing) event.target.blur();
    return;
  }
  if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
  const actions = {
    "/": () => $("#filter-error").focus(),
    r: () => refresh(true),
    p: togglePause,
    "?": () => $("#help").classList.toggle("hidden"),
    "[": () => page(-1),
    "]": () => page(1),
    a: () => { if (!state.session.read_only) selectPage(!$("#select-page").checked); },
  };
  const action = actions[event.key];
  if (action) {
    event.preventDefault();
    action();
  }
}

async function start() {
  try {
    state.session = await api("session");
  } catch (error) {
    $("#meta").textContent = `cannot reach the API: ${error.message}`;
    return;
  }
  const s = state.session;
  $("#meta").textContent = `schema ${s.schema}` + (s.database ? ` · ${s.database}` : "");
  document.body.classList.toggle("read-only", s.read_only);
  $("#ro-badge").classList.toggle("hidden", !s.read_only);
  if (s.read_only) {
    // Not only hidden: write controls are taken out of the page.
    for (const node of $$(".write")) node.remove();
  }
  wire();
  await refresh(true);
  schedule();
}

document.addEventListener("DOMContentLoaded", start);
