// Gale's web UI: a cluster page and a topology page, drawn from /api/v1/gale/status every 2 s.
// Text goes into the page only as text nodes (never parsed as HTML), so an error message holding
// markup shows as text. Actions POST to Storm's REST paths with the API token, asked for once
// and kept for this tab's session.
"use strict";

const REFRESH_MS = 2000;
const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
const live = document.getElementById("live");
let view = null;          // the last status
const prev = new Map();   // "topo/comp" -> the last look at which its counters changed
let rates = new Map();    // "topo/comp" -> { rate, capacity }
let timer = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function table(headers, rows, numeric) {
  const num = new Set(numeric || []);
  return el("table", {},
    el("thead", {}, el("tr", {}, ...headers.map((h, i) => el("th", { class: num.has(i) ? "num" : "" }, h)))),
    el("tbody", {}, ...rows.map(r => el("tr", {}, ...r.map((c, i) => el("td", { class: num.has(i) ? "num" : "" }, c))))));
}

function fmt(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  if (typeof n !== "number") return n;
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(2) + "M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

function uptime(s) {
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return (h ? h + "h " : "") + (h || m ? m + "m " : "") + sec + "s";
}

function toast(msg) {
  const t = document.getElementById("toast");
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
}

// Live rates and capacity: tuples/s (emitted for spouts, executed for bolts) and the share of
// the time the component's executors spent executing, between the last two looks that saw its
// counters change. Heartbeats arrive every few seconds (Nimbus's --heartbeat-secs, 5 by
// default), so most looks see the same counters: those keep the last rate, and a component
// whose counters stood still for 15 s shows 0.
const STILL_MS = 15000;
function updateRates(v) {
  const at = performance.now();
  for (const t of v.topologies) {
    for (const c of t.components) {
      const s = c.stats || {};
      const k = t.id + "/" + c.id;
      const now = { at, emitted: s.emitted || 0, executed: s.executed || 0, busy_us: s.busy_us || 0, executors: c.executors, kind: c.type };
      const was = prev.get(k);
      if (!was) { prev.set(k, now); continue; }
      const same = now.emitted === was.emitted && now.executed === was.executed && now.busy_us === was.busy_us;
      if (same) {
        if (at - was.at > STILL_MS) rates.set(k, { rate: 0, capacity: now.kind === "bolt" ? 0 : null });
        continue;
      }
      const dt = (at - was.at) / 1000;
      if (dt <= 0) continue;
      const count = now.kind === "spout" ? now.emitted - was.emitted : now.executed - was.executed;
      const busy = Math.max(0, now.busy_us - was.busy_us) / 1e6;
      rates.set(k, { rate: Math.max(0, count) / dt, capacity: now.kind === "bolt" ? busy / (dt * Math.max(1, now.executors)) : null });
      prev.set(k, now);
    }
  }
}

async function refresh() {
  try {
    const r = await fetch("/api/v1/gale/status", { headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error("status " + r.status);
    view = await r.json();
    updateRates(view);
    live.textContent = "live · " + new Date().toLocaleTimeString();
    live.classList.remove("stale");
    render();
  } catch (e) {
    live.textContent = "cannot reach Nimbus: " + e.message;
    live.classList.add("stale");
  }
}

function route() {
  const m = location.hash.match(/^#\/topology\/(.+)$/);
  return m ? { page: "topology", id: decodeURIComponent(m[1]) } : { page: "cluster" };
}

function render() {
  if (!view) return;
  const r = route();
  crumbs.replaceChildren();
  if (r.page === "topology") {
    const t = view.topologies.find(x => x.id === r.id || x.name === r.id);
    crumbs.append(el("a", { href: "#/" }, "cluster"), " / ", t ? t.name : r.id);
    main.replaceChildren(t ? topologyPage(t) : el("p", { class: "error" }, "No topology " + r.id + " (it may have been killed)."));
  } else {
    crumbs.append("cluster");
    main.replaceChildren(clusterPage(view));
  }
}

function clusterPage(v) {
  const slots = v.supervisors.reduce((a, s) => a + s.ports.length, 0);
  const used = v.supervisors.reduce((a, s) => a + s.used_ports.length, 0);
  return el("div", {},
    el("h1", {}, "Cluster"),
    el("p", { class: "muted" }, `${v.supervisors.length} supervisors · ${used} of ${slots} slots used · ${v.topologies.length} topologies`),
    el("h2", {}, "Topologies"),
    el("div", { class: "card" }, v.topologies.length === 0 ? el("p", { class: "muted" }, "No topologies running.") :
      table(["Name", "Id", "Status", "Uptime", "Workers", "Executors", "Tasks"],
        v.topologies.map(t => [el("a", { href: "#/topology/" + encodeURIComponent(t.id), class: "topology-link" }, t.name), t.id,
          el("span", { class: "status " + t.status }, t.status), uptime(t.uptime_secs), t.workers, t.executors, t.tasks]),
        [4, 5, 6])),
    el("h2", {}, "Supervisors"),
    el("div", { class: "card" }, table(["Id", "Host", "Slots", "Used", "Free", "Used ports"],
      v.supervisors.map(s => [s.id, s.host, s.ports.length, s.used_ports.length, s.ports.length - s.used_ports.length, s.used_ports.join(", ")]),
      [2, 3, 4])));
}

function capacityColour(c) {
  if (c === null || c === undefined) return "#6b7385";
  if (c >= 0.8) return "#d6336c";
  if (c >= 0.5) return "#e8a317";
  return "#2f9e44";
}

// Layers by longest path from the spouts; nodes in columns, edges as curves labelled with their
// grouping.
function graph(t) {
  const ids = t.components.filter(c => !c.id.startsWith("__") && !c.id.startsWith("$")).map(c => c.id);
  const streams = (t.streams || []).filter(s => ids.includes(s.from) && ids.includes(s.to));
  const layer = new Map(ids.map(id => [id, 0]));
  for (let i = 0; i < ids.length; i++) {
    for (const s of streams) {
      if (s.from !== s.to && layer.get(s.to) < layer.get(s.from) + 1) layer.set(s.to, Math.min(ids.length, layer.get(s.from) + 1));
    }
  }
  const columns = [];
  for (const id of ids) (columns[layer.get(id)] ||= []).push(id);
  const W = 170, H = 54, GX = 90, GY = 34, PAD = 20;
  const pos = new Map();
  columns.forEach((col, x) => col.forEach((id, y) => pos.set(id, { x: PAD + x * (W + GX), y: PAD + y * (H + GY) })));
  const width = PAD * 2 + columns.length * (W + GX) - GX;
  const height = PAD * 2 + Math.max(1, ...columns.map(c => c.length)) * (H + GY) - GY;
  const vw = Math.max(width, 300), vh = Math.max(height, 120);
  // Drawn at its natural size (scaled down only when wider than the page).
  const root = svg("svg", { class: "graph", width: vw, height: vh, viewBox: `0 0 ${vw} ${vh}`, role: "img", "aria-label": "component graph" });
  root.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
    svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#8791a7" }))));
  for (const s of streams) {
    const a = pos.get(s.from), b = pos.get(s.to);
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const mx = (x1 + x2) / 2;
    const d = s.from === s.to
      ? `M ${a.x + W - 20} ${a.y} C ${a.x + W + 30} ${a.y - 40}, ${a.x + W + 30} ${a.y + H + 40}, ${a.x + W - 20} ${a.y + H}`
      : `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`;
    const label = s.grouping + (s.stream && s.stream !== "default" ? " · " + s.stream : "");
    root.append(svg("g", { class: "edge" }, svg("path", { d, "marker-end": "url(#arrow)" }),
      svg("text", { x: mx, y: (y1 + y2) / 2 - 4, "text-anchor": "middle" }, label)));
  }
  for (const id of ids) {
    const c = t.components.find(x => x.id === id);
    const p = pos.get(id);
    const r = rates.get(t.id + "/" + id) || {};
    const fill = c.type === "spout" ? "#3b6fd4" : capacityColour(r.capacity ?? c.stats?.capacity);
    root.append(svg("g", { class: "node", "data-id": id },
      svg("title", {}, `${id} (${c.type}): ${c.executors} executors, ${c.tasks} tasks`),
      svg("rect", { x: p.x, y: p.y, width: W, height: H, fill }),
      svg("text", { x: p.x + 10, y: p.y + 21 }, id.length > 22 ? id.slice(0, 21) + "…" : id),
      svg("text", { x: p.x + 10, y: p.y + 40, class: "rate" }, `${fmt(r.rate ?? 0)}/s · ${c.type === "spout" ? "spout" : "cap " + fmt(r.capacity ?? c.stats?.capacity)}`)));
  }
  return root;
}

async function act(t, action) {
  let path = `/api/v1/topology/${encodeURIComponent(t.id)}/${action}`;
  if (action === "kill" || action === "rebalance") {
    const wait = prompt(`${action === "kill" ? "Kill" : "Rebalance"} ${t.name}: seconds to wait first`, "30");
    if (wait === null) return;
    if (!/^\d+$/.test(wait.trim())) { toast("The wait must be a whole number of seconds."); return; }
    path += "/" + wait.trim();
  }
  if (!confirm(`${action} topology ${t.name}?`)) return;
  for (let attempt = 0; attempt < 2; attempt++) {
    const token = sessionStorage.getItem("galeToken");
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const r = await fetch(path, { method: "POST", headers, body: "{}" });
    if ((r.status === 401 || r.status === 403) && attempt === 0) {
      const entered = prompt("This Nimbus needs its API token (GALE_AUTH_TOKEN) for changes:");
      if (entered === null) return;
      sessionStorage.setItem("galeToken", entered.trim());
      continue;
    }
    let body = {};
    try { body = await r.json(); } catch (e) { /* not JSON */ }
    toast(r.ok ? `${action}: ${body.status || "done"}` : `${action} refused (${r.status}): ${body.error || r.statusText}`);
    if (r.status === 401) sessionStorage.removeItem("galeToken");
    break;
  }
  refresh();
}

function topologyPage(t) {
  const comps = t.components.filter(c => !c.id.startsWith("__") && !c.id.startsWith("$"));
  const rows = comps.map(c => {
    const s = c.stats || {};
    const r = rates.get(t.id + "/" + c.id) || {};
    const gauges = Object.entries(s.gauges || {}).filter(([k]) => k.endsWith("totalSpoutLag")).map(([k, v]) => `${k.split("/")[1]} lag ${v}`).join(", ");
    return [el("span", { "data-component": c.id }, c.id), c.type, c.executors, c.tasks, fmt(s.emitted || 0),
      el("span", { "data-executed-of": c.id, "data-raw": String(s.executed || 0) }, fmt(s.executed || 0)), fmt(s.acked || 0), fmt(s.failed || 0),
      fmt(r.rate), c.type === "bolt" ? fmt(r.capacity ?? s.capacity) : "–",
      fmt(c.type === "spout" ? s.complete_latency_ms : s.execute_latency_ms),
      s.latency_p99_ms !== undefined ? `${fmt(s.latency_p50_ms)} / ${fmt(s.latency_p99_ms)}` : "–", gauges || "–"];
  });
  const errors = [];
  if (t.last_error) errors.push(["(worker)", t.last_error]);
  for (const c of t.components) {
    if (!c.last_error) continue;
    const at = c.stats?.last_error_time_secs;
    errors.push([c.id + (at ? " · " + new Date(at * 1000).toLocaleTimeString() : ""), c.last_error]);
  }
  return el("div", {},
    el("h1", {}, t.name, " ", el("span", { class: "status " + t.status, id: "topology-status" }, t.status)),
    el("p", { class: "muted" }, `${t.id} · up ${uptime(t.uptime_secs)} · ${t.workers} workers · ${t.executors} executors · ${t.tasks} tasks`),
    el("div", { class: "actions" },
      el("button", { onclick: () => act(t, "activate"), id: "activate" }, "Activate"),
      el("button", { onclick: () => act(t, "deactivate"), id: "deactivate" }, "Deactivate"),
      el("button", { onclick: () => act(t, "rebalance"), id: "rebalance" }, "Rebalance"),
      el("button", { onclick: () => act(t, "kill"), id: "kill", class: "danger" }, "Kill")),
    el("h2", {}, "Components"),
    el("div", { class: "card" }, graph(t),
      el("div", { class: "legend" }, "capacity:", el("span", { class: "sw-ok" }), "< 0.5", el("span", { class: "sw-warn" }), "< 0.8",
        el("span", { class: "sw-hot" }), "≥ 0.8", el("span", { class: "sw-spout" }), "spout")),
    el("div", { class: "card", id: "components" }, table(
      ["Component", "Type", "Executors", "Tasks", "Emitted", "Executed", "Acked", "Failed", "Rate/s", "Capacity", "Execute / complete ms", "E2E p50 / p99 ms", "Gauges"],
      rows, [2, 3, 4, 5, 6, 7, 8, 9, 10])),
    el("h2", {}, "Executors"),
    el("div", { class: "card" }, table(["Component", "Tasks", "Supervisor", "Host", "Port", "Uptime", "Emitted", "Executed", "Capacity", "Queue"],
      t.assignment.map(a => {
        const c = t.components.find(x => x.id === a.component);
        const e = (c?.executor_stats || []).find(x => x.id === `[${a.task_start}-${a.task_end}]`);
        return [a.component, a.task_start === a.task_end ? a.task_start : `${a.task_start}-${a.task_end}`, a.supervisor, a.host, a.port,
          e ? uptime(e.uptime_secs) : "–", e ? fmt(e.emitted) : "–", e ? fmt(e.executed) : "–",
          e && c.type === "bolt" ? fmt(e.capacity ?? 0) : "–", e && c.type === "bolt" ? e.queue_depth : "–"];
      }), [4, 6, 7, 8, 9])),
    el("h2", {}, "Last errors"),
    el("div", { class: "card" }, errors.length === 0 ? el("p", { class: "muted" }, "None.") :
      table(["Component", "Error"], errors.map(([c, e]) => [c, el("span", { class: "error" }, e)]))));
}

window.addEventListener("hashchange", render);
refresh();
timer = setInterval(refresh, REFRESH_MS);
