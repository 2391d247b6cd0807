// The hivescribe dashboard: one page, no build step. It signs in with an admin token or a
// user's API key (kept in this tab's sessionStorage), follows /api/v1/dashboard/live, and
// calls the coordinator's REST API for actions. Pages are hash routes: #/status, #/jobs,
// #/job/<id>, #/workers (admins) and #/tasks (users).
"use strict";

const KEY = "hivescribe.token";
const state = {
  token: sessionStorage.getItem(KEY), role: null, username: null, ws: null, skew: 0,
  snapshot: null, job: null, tasks: null, accounts: null, retry: null, route: null,
};
const blobs = new Map(); // "<job>/<item>/<input|output>" -> object URL (thumbnails, audio)
const $ = (sel, root = document) => root.querySelector(sel);

// -- helpers -----------------------------------------------------------------------------

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
const now = () => Date.now() / 1000 - state.skew;
function duration(seconds) {
  if (seconds == null || !isFinite(seconds)) return "–";
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  const h = Math.floor(seconds / 3600);
  return `${h} h ${Math.floor((seconds % 3600) / 60)} min`;
}
const ago = (t) => (t ? `${duration(now() - t)} ago` : "never");
const since = (t) => `<span data-since="${t}" data-mode="elapsed">${duration(now() - t)}</span>`;
const sinceAgo = (t) => `<span data-since="${t}" data-mode="ago">${ago(t)}</span>`;
const badge = (s) => `<span class="badge ${esc(s)}">${esc(s)}</span>`;
const num = (n) => (n == null ? "–" : Number(n).toLocaleString("en"));
function rate(r) { return r == null ? "–" : `${r < 10 ? r.toFixed(2) : r.toFixed(0)}/s`; }
function clock(s) {
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, "0")}`;
}
function bar(done, failed, total) {
  const pct = total ? (100 * (done + failed)) / total : 0;
  const ok = total ? (100 * done) / total : 0;
  return `<div class="bar" role="progressbar" aria-valuenow="${Math.floor(pct)}">`
    + `<span style="width:${ok}%"></span>`
    + `<span class="failed" style="left:${ok}%;width:${pct - ok}%"></span>`
    + `<em>${Math.floor(pct)}%</em></div>`;
}

function toast(message, error = false) {
  const el = $("#toast");
  el.textContent = message;
  el.className = error ? "error" : "";
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 6000);
}

function showDialog(title, body) {
  $("#dialog-title").textContent = title;
  $("#dialog-body").textContent = body;
  $("#dialog").showModal();
}

async function api(method, path, body) {
  const init = { method, headers: { Authorization: `Bearer ${state.token}` } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = Array.isArray(data.detail)
      ? data.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ")
      : data.detail;
    throw new Error(detail || `${response.status} ${response.statusText}`);
  }
  return data;
}

async function fetchBlob(path) {
  if (blobs.has(path)) return blobs.get(path);
  const response = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` } });
  if (!response.ok) throw new Error(`${response.status}: could not load ${path}`);
  const url = URL.createObjectURL(await response.blob());
  blobs.set(path, url);
  return url;
}

// Replace only the rows whose HTML changed: a playing audio player or a loaded thumbnail
// in an unchanged row stays as it is.
function patchRows(tbody, rows, emptyText, columns) {
  if (!tbody) return;
  if (!rows.length) {
    tbody.innerHTML = `<tr><td colspan="${columns}" class="empty">${esc(emptyText)}</td></tr>`;
    return;
  }
  const old = new Map([...tbody.children].map((tr) => [tr.dataset.key, tr]));
  const fragment = document.createDocumentFragment();
  for (const { key, html } of rows) {
    let tr = old.get(key);
    if (!tr || tr.dataset.html !== html) {
      tr = document.createElement("tr");
      tr.dataset.key = key;
      tr.dataset.html = html;
      tr.innerHTML = html;
    }
    fragment.appendChild(tr);
  }
  tbody.replaceChildren(fragment);
}

// -- signing in and the live feed --------------------------------------------------------

async function signIn(token) {
  const response = await fetch("/api/v1/auth/verify-api-key", {
    headers: { Authorization: `Bearer ${token}` },
  });
  if (!response.ok) throw new Error("that token or key is not valid");
  const who = await response.json();
  if (!who.roles.includes("admin") && !who.roles.includes("user")) {
    throw new Error("a worker's key cannot open the dashboard: sign in as an admin or a user");
  }
  state.token = token;
  sessionStorage.setItem(KEY, token);
  connect();
}

function signOut(message) {
  sessionStorage.removeItem(KEY);
  Object.assign(state, { token: null, role: null, username: null, snapshot: null, job: null,
    tasks: null, accounts: null });
  if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  clearTimeout(state.retry);
  setConn(false);
  renderSignIn(message);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/api/v1/dashboard/live`);
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: state.token }));
  ws.onmessage = (event) => onFrame(JSON.parse(event.data));
  ws.onclose = (event) => {
    setConn(false);
    if (event.code === 4401 || event.code === 4403) {
      signOut(`Signed out: ${event.reason || "the key is no longer valid"}`);
      return;
    }
    state.retry = setTimeout(connect, 2000);
  };
}

function setConn(live) {
  const el = $("#conn");
  el.textContent = live ? "live" : (state.token ? "reconnecting…" : "offline");
  el.classList.toggle("live", live);
}

function onFrame(frame) {
  if (frame.at) state.skew = Date.now() / 1000 - frame.at;
  switch (frame.type) {
    case "hello":
      state.role = frame.role;
      state.username = frame.username;
      setConn(true);
      $("#who").textContent = `${frame.username} (${frame.role})`;
      $("#signout").hidden = false;
      route(true);
      break;
    case "snapshot": state.snapshot = frame; update(); break;
    case "job": state.job = frame; update(); break;
    case "tasks": state.tasks = frame; update(); break;
    case "error": toast(frame.detail, true); break;
    default: break;
  }
}

// -- routing -----------------------------------------------------------------------------

const ADMIN_PAGES = [["status", "Status"], ["jobs", "Jobs"], ["workers", "Workers"]];
const USER_PAGES = [["tasks", "My tasks"]];

function parseRoute() {
  const [page, arg] = location.hash.replace(/^#\/?/, "").split("/");
  const pages = state.role === "admin" ? ADMIN_PAGES : USER_PAGES;
  if (page === "job" && arg) return { page, arg: decodeURIComponent(arg) };
  if (pages.some(([p]) => p === page)) return { page };
  if (!page) return { page: pages[0][0] };
  return { page: "missing", arg: page };
}

function route(force = false) {
  if (!state.role) return;
  const next = parseRoute();
  const same = state.route && state.route.page === next.page && state.route.arg === next.arg;
  if (same && !force) return;
  state.route = next;
  const pages = state.role === "admin" ? ADMIN_PAGES : USER_PAGES;
  $("#nav").innerHTML = pages.map(([p, label]) => (
    `<a href="#/${p}" class="${next.page === p ? "active" : ""}">${label}</a>`)).join("");
  if (next.page === "job") {
    if (state.role !== "admin") {
      $("#main").innerHTML = `<h1>Not found</h1><p class="empty">Job pages are for admins. `
        + `<a href="#/tasks">Your tasks</a>.</p>`;
      return;
    }
    state.job = null;
    state.jobFilter = { status: "", search: "", offset: 0 };
    watch();
  } else if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({ type: "unwatch" }));
  }
  const render = { status: renderStatus, jobs: renderJobs, job: renderJob,
    workers: renderWorkers, tasks: renderTasks }[next.page];
  if (!render) {
    $("#main").innerHTML = `<h1>Not found</h1><p class="empty">No page “${esc(next.arg)}”.</p>`;
    return;
  }
  render();
  update();
}

function watch() {
  const f = state.jobFilter;
  const frame = { type: "watch", job_id: state.route.arg, offset: f.offset };
  if (f.status) frame.status = f.status;
  if (f.search) frame.search = f.search;
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(frame));
}

function update() {
  if (!state.route) return;
  ({ status: updateStatus, jobs: updateJobs, job: updateJob, workers: updateWorkers,
    tasks: updateTasks }[state.route.page] || (() => {}))();
}

// -- pages ---------------------------------------------------------------------------------

function renderSignIn(message) {
  $("#nav").innerHTML = "";
  $("#who").textContent = "";
  $("#signout").hidden = true;
  $("#main").innerHTML = `
    <section class="panel signin">
      <h1>Sign in</h1>
      <p class="muted">With an admin token, or your API key: an admin sees the whole system;
      a user sees their own tasks.</p>
      ${message ? `<p role="status">${esc(message)}</p>` : ""}
      <form id="signin-form">
        <label for="token">Admin token or API key</label>
        <input id="token" name="token" type="password" autocomplete="off" required>
        <button class="primary" type="submit">Sign in</button>
      </form>
      <p id="signin-error" class="muted" role="alert"></p>
    </section>`;
  $("#signin-form").onsubmit = async (event) => {
    event.preventDefault();
    try {
      await signIn($("#token").value.trim());
    } catch (error) {
      $("#signin-error").textContent = error.message;
    }
  };
}

function renderStatus() {
  $("#main").innerHTML = `
    <h1>Status</h1>
    <section class="panel"><h2>Workers</h2>
      <div class="figures" id="worker-figures"></div>
      <table><thead><tr><th>Worker</th><th>State</th><th>Working on</th><th>Elapsed</th>
      <th>Last heartbeat</th><th>Contributor</th><th>Tasks</th></tr></thead>
      <tbody id="workers"></tbody></table></section>
    <section class="panel"><h2>Currently processing <span class="muted" id="processing-note"></span></h2>
      <table><thead><tr><th>Item</th><th>Job</th><th>Type</th><th>Worker</th><th>Elapsed</th>
      <th class="num">Attempt</th></tr></thead><tbody id="processing"></tbody></table></section>
    <div class="grid">
      <section class="panel"><h2>Queue by task type</h2>
        <table><thead><tr><th>Type</th><th class="num">Pending</th><th class="num">Leased</th>
        <th class="num">Done</th><th class="num">Failed</th><th class="num">Cancelled</th></tr>
        </thead><tbody id="queue"></tbody></table></section>
      <section class="panel"><h2>Throughput <span class="muted" id="rate-now"></span></h2>
        <svg class="chart" id="chart" viewBox="0 0 600 170" preserveAspectRatio="none"></svg>
      </section>
    </div>
    <section class="panel"><h2>Contributors</h2>
      <table><thead><tr><th>#</th><th>Contributor</th><th>Trust</th><th class="num">Results</th>
      <th>Last result</th></tr></thead><tbody id="leaderboard"></tbody></table></section>`;
}

function updateStatus() {
  const s = state.snapshot;
  if (!s) return;
  const count = (st) => s.workers.filter((w) => w.state === st).length;
  $("#worker-figures").innerHTML = ["online", "busy", "offline"].map((st) => (
    `<div><b id="count-${st}">${count(st)}</b>${st}</div>`)).join("");
  patchRows($("#workers"), s.workers.map((w) => {
    const first = w.item;
    const working = first
      ? `${esc(first.item_key)}${w.holding > 1 ? ` <span class="muted">+${w.holding - 1} more</span>` : ""}`
      : '<span class="muted">–</span>';
    return { key: w.worker_id, html: `<td><b>${esc(w.name)}</b><br><span class="muted">`
      + `${esc(w.transport)}</span></td><td>${badge(w.state)}</td><td>${working}</td>`
      + `<td>${first ? since(first.leased_at) : "–"}</td><td>${sinceAgo(w.last_seen_at)}</td>`
      + `<td>${esc(w.contributor)}</td><td>${esc(w.tasks.join(", "))}</td>` };
  }), "No worker has connected yet.", 7);
  $("#processing-note").textContent = s.leased > s.processing.length
    ? `(the ${s.processing.length} held longest of ${num(s.leased)})` : "";
  patchRows($("#processing"), s.processing.map((p) => ({ key: String(p.id), html:
    `<td>${esc(p.item_key)}</td><td><a href="#/job/${esc(p.job_id)}">${esc(p.job_id.slice(0, 8))}</a>`
    + `</td><td>${esc(p.task_type)}</td><td>${esc(p.worker_name)}</td>`
    + `<td>${since(p.leased_at)}</td><td class="num">${p.attempts}</td>` })),
  "Nothing is being processed.", 6);
  patchRows($("#queue"), s.queue.map((q) => ({ key: q.task_type, html:
    `<td>${esc(q.task_type)}</td>${["pending", "leased", "done", "failed", "cancelled"]
      .map((k) => `<td class="num">${num(q[k])}</td>`).join("")}` })), "The queue is empty.", 6);
  patchRows($("#leaderboard"), s.leaderboard.map((c, i) => ({ key: c.contributor, html:
    `<td>${i + 1}</td><td>${esc(c.name)}</td><td><span class="stars" title="trust level `
    + `${c.trust_level} of 5">${"★".repeat(c.trust_level)}${"☆".repeat(5 - c.trust_level)}`
    + `</span> ${c.trust_level}/5</td><td class="num">${num(c.results)}</td>`
    + `<td>${sinceAgo(c.last_result_at)}</td>` })), "No results yet.", 5);
  drawChart(s.throughput);
}

function drawChart(points) {
  const svg = $("#chart");
  const latest = points.length ? points[points.length - 1][1] : null;
  $("#rate-now").textContent = latest == null ? "(measuring…)" : `now ${rate(latest)}`;
  const end = now();
  // The last hour at most; less while the coordinator has run for less (at least a minute).
  const span = Math.min(3600, Math.max(60, points.length ? end - points[0][0] : 60));
  const start = end - span;
  const top = Math.max(1, ...points.map((p) => p[1])) * 1.1;
  const x = (t) => (600 * (t - start)) / span;
  const y = (r) => 150 - (140 * r) / top;
  const line = points.filter((p) => p[0] >= start)
    .map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
  svg.innerHTML = `<line x1="0" y1="150" x2="600" y2="150"></line>`
    + `<text x="2" y="12">${rate(top)}</text><text x="2" y="166">${duration(span)} ago</text>`
    + `<text x="570" y="166">now</text><polyline points="${line}"></polyline>`;
}

function renderJobs() {
  $("#main").innerHTML = `<h1>Jobs</h1><section class="panel">
    <table><thead><tr><th>Job</th><th>Type</th><th>Dataset</th><th>Status</th><th>Progress</th>
    <th class="num">Done</th><th class="num">Failed</th><th class="num">Rate</th><th>ETA</th>
    <th></th></tr></thead><tbody id="jobs"></tbody></table></section>`;
  $("#jobs").onclick = jobAction;
}

function jobButtons(j) {
  const open = !["done", "failed", "cancelled"].includes(j.status);
  return `${open ? `<button class="danger" data-act="cancel" data-job="${esc(j.job_id)}">Cancel</button>` : ""}`
    + `${j.counts.failed ? ` <button data-act="retry" data-job="${esc(j.job_id)}">Retry failed</button>` : ""}`;
}

function updateJobs() {
  const s = state.snapshot;
  if (!s) return;
  patchRows($("#jobs"), s.jobs.map((j) => ({ key: j.job_id, html:
    `<td><a href="#/job/${esc(j.job_id)}">${esc(j.job_id.slice(0, 8))}</a></td>`
    + `<td>${esc(j.task_type)}</td><td>${esc(j.dataset)}</td><td>${badge(j.status)}</td>`
    + `<td>${bar(j.counts.done, j.counts.failed + j.counts.cancelled, j.total)}</td>`
    + `<td class="num">${num(j.counts.done)} / ${num(j.total)}</td>`
    + `<td class="num">${num(j.counts.failed)}</td><td class="num">${rate(j.rate)}</td>`
    + `<td>${j.eta_s == null ? "–" : duration(j.eta_s)}</td><td>${jobButtons(j)}</td>` })),
  "No jobs yet.", 10);
}

async function jobAction(event) {
  const button = event.target.closest("button[data-act]");
  if (!button) return;
  const job = button.dataset.job;
  button.disabled = true;
  try {
    if (button.dataset.act === "cancel") {
      if (!confirm(`Cancel job ${job}? Its open items stop.`)) return;
      const r = await api("POST", `/api/v1/jobs/${job}/cancel`);
      toast(`Cancelled ${r.cancelled} open items.`);
    } else if (button.dataset.act === "retry") {
      const r = await api("POST", `/api/v1/jobs/${job}/retry-failed`);
      toast(`Sent ${r.retried} failed items back to the queue.`);
    } else if (button.dataset.act === "reset") {
      await api("POST", `/api/v1/jobs/${job}/items/${button.dataset.item}/reset`);
      toast(`Item ${button.dataset.item} is pending again.`);
      watch();
    } else if (button.dataset.act === "reason") {
      showDialog(`Why item ${button.dataset.item} failed`, button.dataset.reason);
    } else if (button.dataset.act === "play" || button.dataset.act === "open") {
      const url = await fetchBlob(button.dataset.src);
      if (button.dataset.act === "open") { window.open(url, "_blank"); return; }
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.src = url;
      button.replaceWith(audio);
      audio.play().catch(() => {});
    }
  } catch (error) {
    toast(error.message, true);
  } finally {
    button.disabled = false;
  }
}

function renderJob() {
  const id = state.route.arg;
  $("#main").innerHTML = `<h1>Job <span class="muted">${esc(id)}</span></h1>
    <section class="panel" id="job-head"><p class="muted">Loading…</p></section>
    <section class="panel"><form class="inline" id="filters">
      <label>Status<select id="f-status"><option value="">all</option>
      ${["pending", "leased", "done", "failed", "cancelled"].map((s) => `<option>${s}</option>`).join("")}
      </select></label>
      <label>Item key contains<input id="f-search" maxlength="200"></label>
      <button type="submit">Filter</button></form></section>
    <section class="panel"><table><thead><tr><th>#</th><th>Item</th><th>Status</th>
      <th class="num">Attempts</th><th>Worker</th><th>Input</th><th>Result</th><th></th></tr>
      </thead><tbody id="items"></tbody></table>
      <div class="pager"><button id="prev" type="button">Previous</button>
      <span id="page-info" class="muted"></span><button id="next" type="button">Next</button>
      </div></section>`;
  $("#filters").onsubmit = (event) => {
    event.preventDefault();
    state.jobFilter = { status: $("#f-status").value, search: $("#f-search").value.trim(),
      offset: 0 };
    watch();
  };
  $("#prev").onclick = () => { state.jobFilter.offset = Math.max(0, state.jobFilter.offset - 50); watch(); };
  $("#next").onclick = () => { state.jobFilter.offset += 50; watch(); };
  $("#main").onclick = jobAction;
}

const IMAGE_TASKS = ["captioning", "ocr"];

function inputCell(job, item) {
  const input = item.input || {};
  if (input.text != null) return `<div class="result">${esc(String(input.text).slice(0, 300))}</div>`;
  const src = `/api/v1/jobs/${job.job_id}/items/${item.id}/input`;
  if (IMAGE_TASKS.includes(job.task_type)) {
    const url = blobs.get(src);
    if (!url) loadThumb(src);
    return `<img class="thumb" alt="input of ${esc(item.item_key)}" data-src="${esc(src)}"`
      + `${url ? ` src="${url}"` : ""}>`;
  }
  const audio = ["transcription", "video-transcription"].includes(job.task_type);
  return `<button type="button" data-act="${audio ? "play" : "open"}" data-src="${esc(src)}">`
    + `${audio ? "▶ play input" : "open input"}</button>`;
}

async function loadThumb(src) {
  try {
    const url = await fetchBlob(src);
    document.querySelectorAll(`img[data-src="${CSS.escape(src)}"]`).forEach((img) => {
      img.src = url;
      const tr = img.closest("tr");
      if (tr) tr.dataset.html = "";
    });
  } catch (error) {
    console.warn(error);
  }
}

function resultCell(job, item) {
  const r = item.result;
  if (!r) return item.status === "failed" ? `<span class="muted">${esc((item.last_error || "").slice(0, 120))}</span>` : "";
  const parts = [];
  const segments = r.output && Array.isArray(r.output.segments) ? r.output.segments : null;
  if (segments && segments.length) {
    parts.push(`<ul class="segments">${segments.slice(0, 30).map((s) => (
      `<li><time>${clock(s.start)} → ${clock(s.end)}</time>${esc(s.text)}</li>`)).join("")}</ul>`);
  } else if (r.text) {
    parts.push(`<div class="result">${esc(r.text.slice(0, 600))}</div>`);
  }
  if (r.has_file) {
    const src = `/api/v1/jobs/${job.job_id}/items/${item.id}/output`;
    const audio = job.task_type === "tts";
    parts.push(`<button type="button" data-act="${audio ? "play" : "open"}" data-src="${esc(src)}">`
      + `${audio ? "▶ play speech" : "open output file"}</button>`);
  }
  parts.push(`<div class="muted">${esc(r.model || "")} · ${esc(r.contributor || "")}</div>`);
  return parts.join("");
}

function updateJob() {
  const frame = state.job;
  if (!frame || frame.job.job_id !== state.route.arg) return;
  const j = frame.job;
  const listed = (state.snapshot?.jobs || []).find((x) => x.job_id === j.job_id) || {};
  $("#job-head").innerHTML = `<div class="figures">
      <div><b>${badge(j.status)}</b>status</div><div><b>${num(j.counts.done)} / ${num(j.total)}</b>done</div>
      <div><b>${num(j.counts.failed)}</b>failed</div><div><b>${rate(listed.rate)}</b>rate</div>
      <div><b>${listed.eta_s == null ? "–" : duration(listed.eta_s)}</b>ETA</div></div>
    ${bar(j.counts.done, j.counts.failed + j.counts.cancelled, j.total)}
    <p class="muted">${esc(j.task_type)} · dataset ${esc(j.dataset)} · owner ${esc(j.owner)}</p>
    <p>${jobButtons(j)}</p>`;
  patchRows($("#items"), frame.items.map((item) => ({ key: String(item.id), html:
    `<td>${item.id}</td><td>${esc(item.item_key)}</td><td>${badge(item.status)}</td>`
    + `<td class="num">${item.attempts} / ${item.max_attempts}</td><td>${esc(item.worker_id || item.result?.worker_id || "")}</td>`
    + `<td>${inputCell(j, item)}</td><td>${resultCell(j, item)}</td><td>`
    + `${item.status === "failed" ? `<button type="button" data-act="reason" data-item="${item.id}" data-reason="${esc(item.last_error || "no reason given")}">Reason</button> ` : ""}`
    + `${["failed", "leased"].includes(item.status) ? `<button type="button" data-act="reset" data-job="${esc(j.job_id)}" data-item="${item.id}">Reset</button>` : ""}`
    + "</td>" })), "No items match.", 8);
  const f = state.jobFilter;
  $("#page-info").textContent = frame.matching
    ? `${f.offset + 1}–${Math.min(f.offset + frame.items.length, frame.matching)} of ${num(frame.matching)}`
    : "";
  $("#prev").disabled = f.offset === 0;
  $("#next").disabled = f.offset + frame.items.length >= frame.matching;
}

function renderWorkers() {
  $("#main").innerHTML = `<h1>Workers</h1>
    <section class="panel"><h2>Add a worker by hand</h2>
      <form class="inline" id="add-worker">
        <label>Name<input id="w-name" required maxlength="200" placeholder="gpu-box-1"></label>
        <label>URL of its status page (optional)<input id="w-url" type="url" placeholder="http://gpu-box-1:8001"></label>
        <label>Priority (lower is preferred)<input id="w-priority" type="number" min="0" max="1000" value="10"></label>
        <button class="primary" type="submit">Add worker</button>
      </form><div id="new-key"></div></section>
    <section class="panel"><h2>Worker accounts</h2>
      <table><thead><tr><th>Name</th><th>Username</th><th>State</th><th>Last seen</th>
      <th>URL</th><th>Priority</th><th></th></tr></thead><tbody id="accounts"></tbody></table>
      <p id="test-result" class="muted"></p></section>
    <section class="panel"><h2>Connected</h2>
      <p class="muted">Every worker that has called in, with an account or a token from the
      configuration file.</p>
      <table><thead><tr><th>Worker</th><th>State</th><th>Contributor</th><th>Transport</th>
      <th>Last heartbeat</th><th class="num">Items held</th></tr></thead>
      <tbody id="connected"></tbody></table></section>`;
  $("#add-worker").onsubmit = async (event) => {
    event.preventDefault();
    const body = { name: $("#w-name").value.trim(), priority: Number($("#w-priority").value) };
    if ($("#w-url").value.trim()) body.url = $("#w-url").value.trim();
    try {
      const made = await api("POST", "/api/v1/workers/register", body);
      $("#new-key").innerHTML = `<p class="secret">Worker <b>${esc(made.username)}</b> added. `
        + `Its API key, shown this once (only its hash is kept):<br><code id="shown-key">`
        + `${esc(made.api_key)}</code><br>Start it with <code>hivescribe worker start `
        + `--server ${esc(location.origin)} --token &lt;key&gt;</code>.</p>`;
      event.target.reset();
      loadAccounts();
    } catch (error) {
      toast(error.message, true);
    }
  };
  $("#accounts").onclick = workerAction;
  loadAccounts();
}

async function loadAccounts() {
  try {
    const data = await api("GET", "/api/v1/workers/accounts");
    state.accounts = data.accounts || data.workers || [];
    updateWorkers();
  } catch (error) {
    toast(error.message, true);
  }
}

function updateWorkers() {
  patchRows($("#connected"), (state.snapshot?.workers || []).map((w) => ({ key: w.worker_id,
    html: `<td>${esc(w.name)}</td><td>${badge(w.state)}</td><td>${esc(w.contributor)}</td>`
      + `<td>${esc(w.transport)}</td><td>${sinceAgo(w.last_seen_at)}</td>`
      + `<td class="num">${w.holding}</td>` })), "No worker has connected yet.", 6);
  if (!state.accounts) return;
  const live = new Map((state.snapshot?.workers || []).map((w) => [w.contributor, w]));
  patchRows($("#accounts"), state.accounts.map((a) => {
    const w = live.get(a.username);
    const stateName = a.disabled ? "disabled" : (w ? w.state : "offline");
    const seen = w ? w.last_seen_at : a.last_seen_at;
    return { key: a.worker_id, html: `<td>${esc(a.name)}</td><td>${esc(a.username)}</td>`
      + `<td>${badge(stateName)}</td><td>${seen ? sinceAgo(seen) : "never"}</td>`
      + `<td>${esc(a.url || "–")}</td><td><input type="number" min="0" max="1000" `
      + `value="${a.priority}" data-priority="${esc(a.worker_id)}" aria-label="priority of ${esc(a.name)}">`
      + ` <button type="button" data-act="priority" data-id="${esc(a.worker_id)}">Save</button></td>`
      + `<td>${a.url ? `<button type="button" data-act="test" data-id="${esc(a.worker_id)}">Test</button> ` : ""}`
      + `${a.disabled ? "" : `<button type="button" class="danger" data-act="delete" data-id="${esc(a.worker_id)}" data-name="${esc(a.name)}">Delete</button>`}</td>` };
  }), "No worker accounts: add one above, or register one with `hivescribe worker register`.", 7);
}

async function workerAction(event) {
  const button = event.target.closest("button[data-act]");
  if (!button) return;
  const id = button.dataset.id;
  button.disabled = true;
  try {
    if (button.dataset.act === "test") {
      $("#test-result").textContent = "Testing…";
      const r = await api("POST", `/api/v1/workers/${id}/test`);
      $("#test-result").textContent = r.ok
        ? `Reached in ${Math.round(r.latency_ms)} ms${r.worker && r.worker.name ? `: ${r.worker.name}` : ""}.`
        : `Not reached: ${r.error}`;
    } else if (button.dataset.act === "delete") {
      if (!confirm(`Delete worker ${button.dataset.name}? Its keys stop working at once.`)) return;
      await api("DELETE", `/api/v1/workers/${id}`);
      toast(`Worker ${button.dataset.name} deleted.`);
      loadAccounts();
    } else if (button.dataset.act === "priority") {
      const value = Number($(`input[data-priority="${CSS.escape(id)}"]`).value);
      await api("PATCH", `/api/v1/workers/${id}`, { priority: value });
      toast(`Priority set to ${value}.`);
      loadAccounts();
    }
  } catch (error) {
    toast(error.message, true);
    if (button.dataset.act === "test") $("#test-result").textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

function renderTasks() {
  $("#main").innerHTML = `<h1>My tasks</h1><section class="panel">
    <p class="muted" id="task-total"></p>
    <table><thead><tr><th>Task</th><th>Type</th><th>Status</th><th>Submitted</th><th>Result</th>
    </tr></thead><tbody id="tasks"></tbody></table></section>`;
}

function updateTasks() {
  const frame = state.tasks;
  if (!frame) return;
  $("#task-total").textContent = `${frame.total} task${frame.total === 1 ? "" : "s"} in all.`;
  patchRows($("#tasks"), frame.tasks.map((t) => ({ key: t.task_id, html:
    `<td><code>${esc(t.task_id)}</code></td><td>${esc(t.task_type)}</td><td>${badge(t.status)}</td>`
    + `<td>${sinceAgo(t.created_at)}</td><td class="result">${esc(t.text || t.error || "")}</td>` })),
  "You have no tasks. Submit one with the API (see docs/api.md).", 5);
}

// -- start -------------------------------------------------------------------------------

setInterval(() => {
  document.querySelectorAll("[data-since]").forEach((el) => {
    const t = Number(el.dataset.since);
    el.textContent = el.dataset.mode === "ago" ? ago(t) : duration(now() - t);
  });
}, 1000);
window.addEventListener("hashchange", () => route());
$("#signout").onclick = () => signOut("Signed out.");
if (state.token) connect(); else renderSignIn();
