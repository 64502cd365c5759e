// meshmon status page: plain JavaScript, no framework, no other origin. Every view reads
// the agent's JSON API (/api/v1/...) and builds DOM nodes (never HTML strings from data).
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const REFRESH_MS = 5000;

// ---------- small DOM helpers ----------
function el(tag, attrs, ...kids) {
  const n = document.createElement(tag);
  setAttrs(n, attrs);
  append(n, kids);
  return n;
}
function sv(tag, attrs, ...kids) {
  const n = document.createElementNS(SVGNS, tag);
  setAttrs(n, attrs);
  append(n, kids);
  return n;
}
function setAttrs(n, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") n.textContent = v;
    else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, v === true ? "" : String(v));
  }
}
function append(n, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    n.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
}
function clear(n) { while (n.firstChild) n.removeChild(n.firstChild); }
// A <details> whose open/closed state survives the view's refresh (keyed by `key`).
const openDetails = new Map();
function keptDetails(key, summary, defaultOpen, ...kids) {
  const open = openDetails.has(key) ? openDetails.get(key) : defaultOpen;
  const d = el("details", { open: open || undefined }, el("summary", { text: summary }), ...kids);
  d.addEventListener("toggle", () => openDetails.set(key, d.open));
  return d;
}

// ---------- formatting ----------
function fmtNum(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(digits);
}
const fmtPct = (f) => (f === null || f === undefined ? "–" : (f * 100).toFixed(f > 0 && f < 0.01 ? 2 : 1) + "%");
const fmtMs = (ms) => (ms === null || ms === undefined ? "–" : ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : fmtNum(ms, 1) + " ms");
// Seconds since the epoch from a number of seconds or an RFC 3339 string (the monitors
// API writes times as RFC 3339).
function toSec(v) {
  if (v === null || v === undefined || v === "") return null;
  if (typeof v === "number") return v;
  const ms = Date.parse(v);
  return Number.isNaN(ms) ? null : ms / 1000;
}
function fmtTime(v) {
  const sec = toSec(v);
  if (!sec) return "–";
  const d = new Date(sec * 1000);
  return d.toISOString().slice(11, 19);
}
function fmtAgo(v) {
  const sec = toSec(v);
  if (!sec) return "–";
  const s = Math.max(0, Date.now() / 1000 - sec);
  if (s < 60) return Math.round(s) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}
function stateBadge(state) {
  const s = state || "NO DATA";
  return el("span", { class: "state " + s.replace(/\s+/g, ""), text: s });
}
function hashColor(name) {
  // A fixed palette of mid-light colours on which black text reads (contrast >= 7:1).
  const palette = ["#8ecae6", "#ffb703", "#90be6d", "#f4a6c6", "#bdb2ff", "#f9c74f", "#80ed99", "#ffadad", "#a0c4ff", "#e9c46a"];
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return palette[h % palette.length];
}

// ---------- API ----------
async function api(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  if (r.status === 404) return null;
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}
// Monitors and Watchdog (tolerates an agent without them: 404 → null).
async function monitorsAll() {
  const [m, w] = await Promise.all([api("/api/v1/monitors").catch(() => null), api("/api/v1/watchdog").catch(() => null)]);
  const configured = (m && m.monitors) || [];
  const findings = (w && w.findings) || [];
  const watchdog = (w && w.monitors) || [];
  const seen = new Set();
  const all = [];
  for (const x of [...configured, ...findings, ...watchdog]) {
    const k = x.id || x.name;
    if (seen.has(k)) continue;
    seen.add(k);
    all.push(x);
  }
  return { available: m !== null || w !== null, configured, findings, watchdog, all };
}
// A monitor's service matches a node named the same, or `<app>.<namespace>` vs `<app>`.
function sameService(a, b) {
  if (!a || !b) return false;
  return a === b || a.split(".")[0] === b || b.split(".")[0] === a;
}
function monitorsOf(mon, service) {
  return mon.all.filter((m) => sameService(m.service, service));
}
function stateOf(mon, service) {
  const rank = { OK: 0, "NO DATA": 0, WARN: 1, ALERT: 2 };
  let best = null;
  for (const m of monitorsOf(mon, service)) if (!best || (rank[m.state] || 0) > (rank[best.state] || 0)) best = m;
  return best;
}
function serviceStates(mon) {
  const by = {};
  const rank = { OK: 0, "NO DATA": 0, WARN: 1, ALERT: 2 };
  for (const m of mon.all) {
    if (!m.service) continue;
    const cur = by[m.service];
    if (!cur || (rank[m.state] || 0) > (rank[cur.state] || 0)) by[m.service] = m;
  }
  return by;
}

// ---------- routing ----------
function parseHash() {
  const h = location.hash.replace(/^#\/?/, "");
  const [path, qs] = h.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(qs || "");
  return { view: parts[0] || "map", arg: parts.slice(1).join("/"), params };
}
function link(view, arg, params) {
  let h = "#/" + view;
  if (arg) h += "/" + encodeURIComponent(arg);
  const q = new URLSearchParams(params || {}).toString();
  return q ? h + "?" + q : h;
}

let current = null; // { refresh: fn }
let timer = null;

async function render() {
  const r = parseHash();
  const view = VIEWS[r.view] ? r.view : "map";
  for (const a of document.querySelectorAll(".top nav a")) {
    const active = a.dataset.view === view || (view === "service" && a.dataset.view === "services") || (view === "trace" && a.dataset.view === "traces") || (view === "metric" && a.dataset.view === "services");
    if (active) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const root = document.getElementById("view");
  clear(root);
  current = null;
  try {
    current = await VIEWS[view](root, r.arg, r.params);
  } catch (e) {
    root.append(el("p", { class: "notice", role: "alert", text: "Could not load this view: " + e.message }));
  }
}
function setTitle(t) {
  document.getElementById("title").textContent = t;
  document.title = t + " · meshmon";
}
async function tick() {
  if (!document.getElementById("live").checked) return;
  header().catch(() => {});
  if (current && current.refresh) {
    // Keep the keyboard focus where it was across the refresh.
    const root = document.getElementById("view");
    const a = document.activeElement;
    let sel = null;
    if (a && root.contains(a)) {
      for (const k of ["data-service", "data-monitor", "data-pattern", "data-check", "data-span"]) {
        if (a.hasAttribute(k)) { sel = `${a.tagName.toLowerCase()}[${k}="${CSS.escape(a.getAttribute(k))}"]`; break; }
      }
      if (!sel && a.id) sel = "#" + CSS.escape(a.id);
      if (!sel && a.getAttribute("href")) sel = `[href="${CSS.escape(a.getAttribute("href"))}"]`;
    }
    try { await current.refresh(); } catch (e) { /* next tick retries */ }
    if (sel && document.activeElement !== a) {
      const n = root.querySelector(sel);
      if (n) n.focus({ preventScroll: true });
    }
  }
}

async function header() {
  const [st, mon] = await Promise.all([api("/api/v1/status"), monitorsAll()]);
  const agent = document.getElementById("agent");
  if (st) {
    const up = st.checks ? `${st.checks.up}/${st.checks.total} targets up` : "";
    agent.textContent = `${st.hostname || "agent"} · v${st.version} · up ${Math.round(st.uptime_s)} s · ${up} · ${st.store ? st.store.traces : 0} traces`;
  }
  const alerts = mon.all.filter((m) => m.state === "ALERT").length;
  const c = document.getElementById("alert-count");
  c.hidden = alerts === 0;
  c.textContent = String(alerts);
  c.setAttribute("aria-label", alerts + " monitors in ALERT");
}

// ---------- charts ----------
// series: [{name, color, points:[{t,v}]}]; band: [{t, lower, upper}]; anomalies: [{t, v}]
function lineChart({ title, unit, series, band, anomalies, yfmt, height }) {
  const W = 470, H = height || 230, L = 50, R = 12, T = 34, B = 26;
  const fmt = yfmt || ((v) => fmtNum(v));
  const all = series.flatMap((s) => s.points);
  const bandPts = band || [];
  const ts = [...all.map((p) => p.t), ...bandPts.map((b) => b.t)];
  const vs = [...all.map((p) => p.v), ...bandPts.flatMap((b) => [b.lower, b.upper])].filter((v) => v !== null && Number.isFinite(v));
  const last = series.map((s) => (s.points.length ? `${s.name} ${fmt(s.points[s.points.length - 1].v)}` : `${s.name} no data`)).join(", ");
  const svg = sv("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${title} (${unit}): ${all.length} points; latest ${last}` });
  svg.append(sv("text", { x: 4, y: 16, "font-weight": "700", "font-size": "14", fill: "#1f2328", text: unit ? `${title} (${unit})` : title }));
  if (!all.length) {
    svg.append(sv("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty", text: "No points yet" }));
    return svg;
  }
  let t0 = Math.min(...ts), t1 = Math.max(...ts);
  if (t1 - t0 < 1) { t0 -= 30; t1 += 30; }
  let y0 = Math.min(0, ...vs), y1 = Math.max(...vs);
  if (y1 - y0 < 1e-9) y1 = y0 + 1;
  y1 += (y1 - y0) * 0.08;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  const grid = sv("g", { class: "grid" });
  const axis = sv("g", { class: "axis" });
  for (let i = 0; i <= 4; i++) {
    const v = y0 + ((y1 - y0) * i) / 4;
    grid.append(sv("line", { x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    axis.append(sv("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", text: fmt(v) }));
  }
  for (let i = 0; i <= 4; i++) {
    const t = t0 + ((t1 - t0) * i) / 4;
    axis.append(sv("text", { x: x(t), y: H - 8, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle", text: fmtTime(t) }));
  }
  axis.append(sv("line", { x1: L, x2: W - R, y1: H - B, y2: H - B }));
  svg.append(grid, axis);
  if (bandPts.length > 1) {
    const ok = bandPts.filter((b) => Number.isFinite(b.lower) && Number.isFinite(b.upper));
    const d = ok.map((b, i) => `${i ? "L" : "M"}${x(b.t).toFixed(1)},${y(b.upper).toFixed(1)}`).join("") +
      ok.slice().reverse().map((b) => `L${x(b.t).toFixed(1)},${y(b.lower).toFixed(1)}`).join("") + "Z";
    if (ok.length > 1) svg.append(sv("path", { class: "band", d }, sv("title", { text: "expected range (anomaly band)" })));
  }
  series.forEach((s, si) => {
    if (!s.points.length) return;
    const d = s.points.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join("");
    svg.append(sv("path", { class: "line", d, stroke: s.color, "stroke-dasharray": s.dash || null }));
    const g = sv("g", {});
    for (const p of s.points) {
      g.append(sv("circle", { class: "pt", cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 3, fill: s.color }, sv("title", { text: `${s.name} ${fmtTime(p.t)}: ${fmt(p.v)} ${unit}` })));
    }
    svg.append(g);
    if (series.length < 2) return; // the title names a lone series
    const lw = (n) => 24 + 7 * n.length;
    const lx = W - R - series.slice(si).reduce((a, x) => a + lw(x.name), 0);
    svg.append(sv("g", { class: "legend" }, sv("rect", { x: lx, y: 7, width: 12, height: 12, fill: s.color }), sv("text", { x: lx + 16, y: 17, text: s.name })));
  });
  for (const a of anomalies || []) {
    svg.append(sv("circle", { class: "pt anomalous", cx: x(a.t), cy: y(a.v), r: 4.5 }, sv("title", { text: `anomalous ${fmtTime(a.t)}: ${fmt(a.v)}` })));
  }
  return svg;
}

// ---------- Service Map ----------
const edgeHistory = new Map(); // "a→b" → [{t, calls, errors}]
function edgeRate(e, now) {
  const k = e.from + "→" + e.to;
  const h = edgeHistory.get(k) || [];
  if (!h.length || h[h.length - 1].calls !== e.calls || now - h[h.length - 1].t > 4) h.push({ t: now, calls: e.calls, errors: e.errors });
  while (h.length > 2 && now - h[1].t > 60) h.shift();
  edgeHistory.set(k, h);
  const a = h[0], b = h[h.length - 1];
  if (b.t - a.t >= 3 && b.calls > a.calls) {
    const dc = b.calls - a.calls;
    return { rate: dc / (b.t - a.t), err: (b.errors - a.errors) / dc, windowed: true };
  }
  return { rate: null, err: e.calls ? e.errors / e.calls : 0, windowed: false };
}

function layout(services, edges) {
  const incoming = new Map(services.map((s) => [s, 0]));
  for (const e of edges) incoming.set(e.to, (incoming.get(e.to) || 0) + 1);
  const depth = new Map();
  const roots = services.filter((s) => !incoming.get(s));
  const queue = (roots.length ? roots : services.slice(0, 1)).map((s) => [s, 0]);
  while (queue.length) {
    const [s, d] = queue.shift();
    if (depth.has(s) && depth.get(s) >= d) continue;
    if (d > services.length) continue;
    depth.set(s, d);
    for (const e of edges) if (e.from === s && e.to !== s) queue.push([e.to, d + 1]);
  }
  for (const s of services) if (!depth.has(s)) depth.set(s, 0);
  const cols = [];
  for (const s of services) {
    const d = depth.get(s);
    (cols[d] = cols[d] || []).push(s);
  }
  return cols.map((c) => (c || []).sort());
}

async function viewMap(root) {
  setTitle("Service Map");
  const intro = el("p", { class: "muted", text: "Services seen in traces, and who calls whom. Edges show requests per second (over the last minute) and the share of calls that failed. A service with a monitor in ALERT is outlined in red and labelled." });
  const box = el("div", { id: "map-box" });
  const table = el("div", {});
  root.append(intro, box, table);
  async function refresh() {
    const [map, svcs, mon] = await Promise.all([api("/api/v1/servicemap"), api("/api/v1/services"), monitorsAll()]);
    const now = Date.now() / 1000;
    const services = (map && map.services) || [];
    const edges = (map && map.edges) || [];
    const red = Object.fromEntries(((svcs && svcs.services) || []).map((s) => [s.service, s]));
    const states = serviceStates(mon);
    clear(box);
    clear(table);
    if (!services.length) {
      box.append(el("p", { class: "notice", text: "No services yet: the map fills as traces arrive on the APM intake (port 8126)." }));
      return;
    }
    const cols = layout(services, edges);
    // Node width from the longest name (14px bold ≈ 8.4px a character).
    // Istio's tracer names services `<app>.<namespace>`: the app in bold, the namespace muted.
    const split = (s) => { const i = s.indexOf("."); return i > 0 ? [s.slice(0, i), s.slice(i)] : [s, ""]; };
    const NW = Math.max(190, Math.ceil(Math.max(...services.map((s) => split(s)[0].length * 7.8 + split(s)[1].length * 6.2))) + 28), NH = 66, GX = 104, GY = 34;
    const rows = Math.max(...cols.map((c) => c.length));
    const W = Math.max(640, cols.length * (NW + GX) + 40), H = Math.max(200, rows * (NH + GY) + 40);
    const pos = {};
    cols.forEach((c, ci) => c.forEach((s, ri) => {
      const off = ((rows - c.length) * (NH + GY)) / 2;
      pos[s] = { x: 20 + ci * (NW + GX), y: 20 + off + ri * (NH + GY) };
    }));
    const svg = sv("svg", { class: "map", viewBox: `0 0 ${W} ${H}`, role: "group", "aria-label": `Service map: ${services.length} services, ${edges.length} edges` });
    svg.append(sv("defs", {}, sv("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, sv("path", { d: "M0,0L10,5L0,10z", fill: "#57606a" }))));
    const edgeRows = [];
    for (const e of edges) {
      const a = pos[e.from], b = pos[e.to];
      if (!a || !b) continue;
      const r = edgeRate(e, now);
      const x1 = a.x + NW, y1 = a.y + NH / 2, x2 = b.x, y2 = b.y + NH / 2;
      const back = x2 <= x1;
      const d = back ? `M${a.x + NW / 2},${a.y + NH} C${a.x + NW / 2},${a.y + NH + 60} ${b.x + NW / 2},${b.y + NH + 60} ${b.x + NW / 2},${b.y + NH}` : `M${x1},${y1} C${x1 + GX / 2},${y1} ${x2 - GX / 2},${y2} ${x2 - 2},${y2}`;
      const mx = back ? (a.x + b.x + NW) / 2 : (x1 + x2) / 2, my = back ? Math.max(a.y, b.y) + NH + 50 : (y1 + y2) / 2;
      const rateText = r.rate === null ? `${e.calls} calls` : `${fmtNum(r.rate)}/s`;
      const hasErr = r.err > 0;
      const label = `${e.from} calls ${e.to}: ${rateText}, ${fmtPct(r.err)} errors, mean ${fmtMs(e.mean_ms)}`;
      svg.append(sv("g", { class: "edge" + (hasErr ? " errors" : ""), "data-from": e.from, "data-to": e.to, "aria-label": label },
        sv("title", { text: label }),
        sv("path", { d, "marker-end": "url(#arrow)" }),
        sv("text", { x: mx, y: my - 4, "text-anchor": "middle", class: "rate", text: rateText }),
        sv("text", { x: mx, y: my + 11, "text-anchor": "middle", class: "err", text: fmtPct(r.err) + " err" })));
      edgeRows.push({ e, r, rateText });
    }
    for (const s of services) {
      const p = pos[s];
      const m = states[s] || stateOf(mon, s);
      const st = m ? m.state : null;
      const cls = "node" + (st === "ALERT" ? " alert" : st === "WARN" ? " warn" : "");
      const rs = red[s];
      const line2 = rs ? `${fmtNum(rs.rate)} req/s · ${fmtPct(rs.error_rate)} err` : "no top-level spans";
      const line3 = rs ? `p95 ${fmtMs(rs.p95_ms)}` : "";
      const label = `${s}${st === "ALERT" || st === "WARN" ? ", " + st + ": " + (m.name || "") : ""}. ${line2} ${line3}. Open the service overview.`;
      const g = sv("g", { class: cls, tabindex: 0, role: "link", "data-service": s, "data-state": st || "", "aria-label": label,
        onclick: () => { location.hash = link("service", s); },
        onkeydown: (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); location.hash = link("service", s); } } },
        sv("title", { text: label }),
        sv("rect", { x: p.x, y: p.y, width: NW, height: NH, rx: 9 }),
        sv("text", { x: p.x + 12, y: p.y + 22 }, sv("tspan", { class: "name", text: split(s)[0] }), sv("tspan", { class: "ns", text: split(s)[1] })),
        sv("text", { x: p.x + 12, y: p.y + 40, text: line2 }),
        sv("text", { x: p.x + 12, y: p.y + 56, text: line3 }));
      if (st === "ALERT" || st === "WARN") g.append(sv("text", { x: p.x + NW - 10, y: p.y + 56, "text-anchor": "end", class: "badge", text: "⚠ " + st }));
      svg.append(g);
    }
    box.append(svg, el("ul", { class: "legend-list" },
      el("li", { text: "Red outline + ⚠ ALERT: a monitor on the service is alerting" }),
      el("li", { text: "Red edge: some calls failed" }),
      el("li", { text: "Select a service (Tab, Enter) for its overview" })));
    // The same data as a table, for screen readers and exact figures.
    const tb = el("tbody", {});
    for (const { e, r, rateText } of edgeRows) {
      tb.append(el("tr", {}, el("td", {}, el("a", { href: link("service", e.from), text: e.from })), el("td", {}, el("a", { href: link("service", e.to), text: e.to })),
        el("td", { class: "num", text: rateText }), el("td", { class: "num", text: String(e.calls) }), el("td", { class: "num", text: fmtPct(r.err) }), el("td", { class: "num", text: fmtMs(e.mean_ms) })));
    }
    table.append(el("h2", { text: "Calls between services" }), el("table", { "aria-label": "Service map edges" },
      el("thead", {}, el("tr", {}, ["Caller", "Callee"].map((h) => el("th", { text: h })), ["Rate", "Calls", "Errors", "Mean latency"].map((h) => el("th", { class: "num", text: h })))), tb));
  }
  await refresh();
  return { refresh };
}

// ---------- Services list and one service ----------
async function viewServices(root) {
  setTitle("Services");
  const box = el("div", {});
  root.append(el("p", { class: "muted", text: "Request rate, errors and latency of each service's top-level spans over the last stats window (apm.stats_flush_interval)." }), box);
  async function refresh() {
    const [s, mon] = await Promise.all([api("/api/v1/services"), monitorsAll()]);
    const states = serviceStates(mon);
    clear(box);
    const list = (s && s.services) || [];
    if (!list.length) { box.append(el("p", { class: "notice", text: "No services yet." })); return; }
    const tb = el("tbody", {});
    for (const x of list) {
      const m = states[x.service] || stateOf(mon, x.service);
      tb.append(el("tr", {}, el("td", {}, el("a", { href: link("service", x.service), text: x.service })), el("td", {}, m ? stateBadge(m.state) : el("span", { class: "muted", text: "no monitor" })),
        el("td", { class: "num", text: fmtNum(x.rate) }), el("td", { class: "num", text: fmtPct(x.error_rate) }), el("td", { class: "num", text: fmtMs(x.p50_ms) }), el("td", { class: "num", text: fmtMs(x.p95_ms) }), el("td", { class: "num", text: fmtMs(x.p99_ms) }), el("td", { class: "num", text: String(x.total_hits) }), el("td", { class: "num", text: String(x.total_errors) })));
    }
    box.append(el("table", { "aria-label": "Services" }, el("thead", {}, el("tr", {}, el("th", { text: "Service" }), el("th", { text: "Monitor" }), ["Req/s", "Errors", "p50", "p95", "p99", "Requests", "Errors (all)"].map((h) => el("th", { class: "num", text: h })))), tb));
  }
  await refresh();
  return { refresh };
}

function signalChart(signal) {
  const s = (signal || "").toLowerCase();
  if (s.includes("error")) return "errors";
  if (s.includes("lat") || s.includes("p9") || s.includes("p5") || s.includes("duration")) return "latency";
  return "rate";
}

async function viewService(root, name) {
  setTitle("Service: " + name);
  const kpis = el("div", { class: "kpis", "aria-live": "polite" });
  const links = el("ul", { class: "links" });
  const charts = el("div", { class: "grid" });
  const monBox = el("div", {});
  const metrics = el("div", {});
  root.append(kpis, links, charts, monBox, metrics);
  async function refresh() {
    const [ts, svcs, pats, mon] = await Promise.all([
      api("/api/v1/services/" + encodeURIComponent(name) + "/timeseries"),
      api("/api/v1/services"),
      api("/api/v1/patterns?service=" + encodeURIComponent(name)),
      monitorsAll(),
    ]);
    const red = ((svcs && svcs.services) || []).find((s) => s.service === name);
    const mine = monitorsOf(mon, name);
    clear(kpis); clear(links); clear(charts); clear(monBox); clear(metrics);
    const alerting = mine.filter((m) => m.state === "ALERT");
    // Headline figures over the last few stats buckets, from the charts' own series.
    const K = 5;
    const lastH = ts ? ts.hits.slice(-K) : [], lastE = ts ? ts.errors.slice(-K) : [];
    const sumH = lastH.reduce((a, p) => a + p.v, 0), sumE = lastE.reduce((a, p) => a + p.v, 0);
    const span = ts ? lastH.length * ts.bucket_s : 0;
    const p95 = ts && ts.p95_ms.length ? ts.p95_ms[ts.p95_ms.length - 1].v : red ? red.p95_ms : null;
    kpis.append(
      el("div", { class: "kpi" }, el("b", { text: span ? fmtNum(sumH / span) : "–" }), el("span", { text: `requests/s (last ${fmtNum(span, 0)} s)` })),
      el("div", { class: "kpi" }, el("b", { text: sumH ? fmtPct(sumE / sumH) : "–" }), el("span", { text: "errors" })),
      el("div", { class: "kpi" }, el("b", { text: fmtMs(p95) }), el("span", { text: "p95 latency (last)" })),
      el("div", { class: "kpi" }, el("b", {}, alerting.length ? stateBadge("ALERT") : mine.length ? stateBadge(mine.some((m) => m.state === "WARN") ? "WARN" : "OK") : "–"), el("span", { text: `${mine.length} monitors` })));
    const npat = ((pats && pats.patterns) || []).length;
    links.append(
      el("li", {}, el("a", { href: link("traces", "", { service: name }), text: "Traces of " + name })),
      el("li", {}, el("a", { href: link("patterns", "", { service: name }), text: `Log patterns (${npat})` })),
      el("li", {}, el("a", { href: "#monitors-of-service", text: `Monitors (${mine.length})` })),
      el("li", {}, el("a", { href: "#scraped-metrics", text: `Scraped metrics (${ts ? ts.metrics.length : 0})` })));
    const band = { rate: null, errors: null, latency: null };
    for (const m of mine) m.history = (m.history || []).map((p) => ({ ...p, t: toSec(p.t) }));
    for (const m of mine) {
      const h = (m.history || []).filter((p) => p.lower !== null && p.lower !== undefined);
      if (h.length && !band[signalChart(m.signal || m.query)]) band[signalChart(m.signal || m.query)] = m;
    }
    const P = (arr) => arr || [];
    charts.append(
      el("div", { class: "panel" }, lineChart({ title: "Requests", unit: "req/s", series: [{ name: "rate", color: "#0a58ca", points: P(ts && ts.rate) }] })),
      el("div", { class: "panel" }, lineChart({ title: "Errors", unit: "% of requests", yfmt: (v) => fmtNum(v, 1), series: [{ name: "error rate", color: "#cf222e", points: P(ts && ts.error_rate).map((p) => ({ t: p.t, v: p.v * 100 })) }] })),
      el("div", { class: "panel" }, lineChart({ title: "Latency", unit: "ms", series: [
        { name: "p50", color: "#1a7f37", points: P(ts && ts.p50_ms) },
        { name: "p95", color: "#9a6700", points: P(ts && ts.p95_ms) },
        { name: "p99", color: "#8250df", dash: "6 4", points: P(ts && ts.p99_ms) }] })));
    for (const kind of ["rate", "errors", "latency"]) {
      const m = band[kind];
      if (!m) continue;
      const h = m.history;
      charts.append(el("div", { class: "panel" }, lineChart({
        title: `${m.name.replace(" on " + m.service, "").slice(0, 40)} · ${m.state}`, unit: "",
        series: [{ name: "value", color: "#1f2328", points: h.filter((p) => p.value !== null).map((p) => ({ t: p.t, v: p.value })) }],
        band: h.map((p) => ({ t: p.t, lower: p.lower, upper: p.upper })),
        anomalies: h.filter((p) => p.anomalous && p.value !== null).map((p) => ({ t: p.t, v: p.value })) })));
    }
    monBox.append(el("h2", { id: "monitors-of-service", text: "Monitors on " + name }));
    if (!mon.available) monBox.append(el("p", { class: "muted", text: "This agent serves no monitors API." }));
    else if (!mine.length) monBox.append(el("p", { class: "muted", text: "No monitor watches this service yet." }));
    for (const m of mine) monBox.append(monitorCard(m, false, false));
    metrics.append(el("h2", { id: "scraped-metrics", text: "Scraped metrics naming " + name }));
    const ms = (ts && ts.metrics) || [];
    if (!ms.length) metrics.append(el("p", { class: "muted", text: "No scraped series name this service (destination_service_name, service tags)." }));
    else metrics.append(el("ul", {}, ms.map((m) => el("li", {}, el("a", { href: link("metric", m.name, m.tags.map((t) => ["tag", t])), text: m.name }), ` — ${m.series} series with `, el("code", { text: m.tags.join(" ") })))));
  }
  await refresh();
  return { refresh };
}

async function viewMetric(root, name, params) {
  const tags = params.getAll("tag");
  const tag = tags.join(" ");
  setTitle("Metric: " + name);
  const box = el("div", { class: "panel" });
  root.append(el("p", { class: "muted" }, "Series of ", el("code", { text: name }), tag ? [" with ", el("code", { text: tag })] : ""), box);
  async function refresh() {
    const q = "/api/v1/series?name=" + encodeURIComponent(name) + tags.map((t) => "&tag=" + encodeURIComponent(t)).join("");
    const r = await api(q);
    const series = ((r && r.series) || []).slice(0, 8);
    const colors = ["#0a58ca", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0b7285", "#57606a"];
    clear(box);
    box.append(lineChart({ title: name, unit: series[0] ? series[0].type : "", height: 280, series: series.map((s, i) => ({ name: "#" + (i + 1), color: colors[i], points: s.points })) }));
    box.append(el("ol", {}, series.map((s) => el("li", { class: "mono wrap", text: s.tags.join(", ") }))));
    if (((r && r.series) || []).length > 8) box.append(el("p", { class: "muted", text: `${r.series.length - 8} more series not drawn.` }));
  }
  await refresh();
  return { refresh };
}

// ---------- Traces ----------
async function serviceOptions(selected) {
  const m = await api("/api/v1/servicemap");
  const names = new Set((m && m.services) || []);
  if (selected) names.add(selected);
  return [el("option", { value: "", text: "all services" }), ...[...names].sort().map((s) => el("option", { value: s, text: s, selected: s === selected }))];
}
function traceTable(label, list) {
  const tb = el("tbody", {});
  for (const t of list) {
    tb.append(el("tr", {},
      el("td", { class: "num", text: fmtTime(t.start / 1e9) }),
      el("td", {}, el("a", { href: link("trace", t.trace_id), text: t.resource || t.trace_id, "aria-label": `Trace ${t.resource} of ${t.service}, ${fmtMs(t.duration_ms)}${t.error ? ", error" : ""}` })),
      el("td", { text: t.service }),
      el("td", { class: "num", text: fmtMs(t.duration_ms) }),
      el("td", { class: "num", text: String(t.spans) }),
      el("td", {}, t.error ? stateBadge("error") : el("span", { class: "muted", text: "ok" })),
      el("td", { class: "wrap", text: (t.services || []).join(", ") })));
  }
  return el("table", { "aria-label": label }, el("thead", {}, el("tr", {}, el("th", { class: "num", text: "Start (UTC)" }), el("th", { text: "Resource" }), el("th", { text: "Root service" }), el("th", { class: "num", text: "Duration" }), el("th", { class: "num", text: "Spans" }), el("th", { text: "Status" }), el("th", { text: "Services" }))), tb);
}
async function viewTraces(root, _arg, params) {
  const service = params.get("service") || "";
  setTitle(service ? "Traces: " + service : "Traces");
  const sel = el("select", { id: "trace-service", onchange: () => { location.hash = link("traces", "", sel.value ? { service: sel.value } : {}); } }, await serviceOptions(service));
  const errOnly = el("input", { type: "checkbox", id: "trace-errors", onchange: () => refresh() });
  root.append(el("div", { class: "controls" }, el("label", { for: "trace-service" }, "Service", sel), el("label", { class: "inline" }, el("span", { text: "Errors only" }), errOnly)));
  const box = el("div", {});
  root.append(box);
  async function refresh() {
    const r = await api("/api/v1/traces?limit=200" + (service ? "&service=" + encodeURIComponent(service) : ""));
    let list = (r && r.traces) || [];
    if (errOnly.checked) list = list.filter((t) => t.error);
    clear(box);
    if (!list.length) { box.append(el("p", { class: "notice", text: "No traces kept yet for this selection." })); return; }
    const slow = list.slice().sort((a, b) => b.duration_ms - a.duration_ms).slice(0, 10);
    box.append(el("h2", { text: "Slowest" }), traceTable("Slowest traces", slow), el("h2", { text: "Most recent" }), traceTable("Most recent traces", list.slice(0, 30)));
  }
  await refresh();
  return { refresh };
}

function flameGraph(trace, onSelect) {
  const spans = trace.spans.slice();
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const kids = new Map();
  const roots = [];
  for (const s of spans) {
    if (s.parent_id && byId.has(s.parent_id) && s.parent_id !== s.span_id) (kids.get(s.parent_id) || kids.set(s.parent_id, []).get(s.parent_id)).push(s);
    else roots.push(s);
  }
  const order = [];
  const walk = (s, d) => { order.push([s, d]); for (const k of (kids.get(s.span_id) || []).sort((a, b) => a.start - b.start)) walk(k, d + 1); };
  roots.sort((a, b) => a.start - b.start).forEach((r) => walk(r, 0));
  const t0 = Math.min(...spans.map((s) => s.start));
  const t1 = Math.max(...spans.map((s) => s.start + s.duration));
  const total = Math.max(1, t1 - t0);
  const W = 1000, LW = 300, RH = 24, TOP = 24;
  const H = TOP + order.length * RH + 8;
  const x = (t) => LW + ((t - t0) / total) * (W - LW - 10);
  const svg = sv("svg", { class: "flame", viewBox: `0 0 ${W} ${H}`, role: "list", "aria-label": `Waterfall of ${order.length} spans over ${fmtMs(total / 1e6)}` });
  const axis = sv("g", { class: "timeaxis" });
  for (let i = 0; i <= 5; i++) {
    const tx = LW + (i / 5) * (W - LW - 10);
    axis.append(sv("line", { x1: tx, x2: tx, y1: TOP - 6, y2: H }), sv("text", { x: tx, y: 14, "text-anchor": i === 0 ? "start" : i === 5 ? "end" : "middle", text: fmtMs((total * i) / 5 / 1e6) }));
  }
  svg.append(axis);
  const nodes = [];
  order.forEach(([s, d], i) => {
    const y = TOP + i * RH;
    const bx = x(s.start), bw = Math.max(2, x(s.start + s.duration) - bx);
    const label = `${s.service} ${s.name} ${s.resource}: ${fmtMs(s.duration / 1e6)} at +${fmtMs((s.start - t0) / 1e6)}${s.error ? ", error" : ""}`;
    const g = sv("g", { class: "span" + (s.error ? " error" : ""), tabindex: 0, role: "listitem", "aria-label": label, "data-span": String(s.span_id), "data-service": s.service },
      sv("title", { text: label }),
      sv("rect", { class: "rowbg", x: 0, y, width: W, height: RH }),
      sv("text", { class: "label", x: 6 + Math.min(d, 8) * 12, y: y + 16, text: `${s.service} · ${s.resource || s.name}`.slice(0, 40 - Math.min(d, 8)) }),
      sv("rect", { class: "bar", x: bx, y: y + 3, width: bw, height: RH - 6, rx: 3, fill: hashColor(s.service) }),
      sv("text", { x: bw > 70 ? bx + 4 : bx + bw + 4, y: y + 16, text: fmtMs(s.duration / 1e6) + (s.error ? " ✖" : "") }));
    const pick = () => { for (const n of nodes) n.classList.remove("selected"); g.classList.add("selected"); onSelect(s); };
    g.addEventListener("click", pick);
    g.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); pick(); }
      if (ev.key === "ArrowDown" && nodes[i + 1]) { ev.preventDefault(); nodes[i + 1].focus(); }
      if (ev.key === "ArrowUp" && nodes[i - 1]) { ev.preventDefault(); nodes[i - 1].focus(); }
    });
    nodes.push(g);
    svg.append(g);
  });
  return { svg, first: order.length ? order[0][0] : null, select: (i) => nodes[i] && nodes[i].dispatchEvent(new Event("click")) };
}

async function viewTrace(root, id) {
  setTitle("Trace " + id);
  const t = await api("/api/v1/traces/" + encodeURIComponent(id));
  if (!t) { root.append(el("p", { class: "notice", text: "This trace is no longer in the store (it keeps store.max_traces traces)." })); return null; }
  setTitle(`Trace: ${t.resource || t.service}`);
  const services = [...new Set(t.spans.map((s) => s.service))].sort();
  root.append(el("div", { class: "kpis" },
    el("div", { class: "kpi" }, el("b", { text: fmtMs(t.duration / 1e6) }), el("span", { text: "duration" })),
    el("div", { class: "kpi" }, el("b", { text: String(t.spans.length) }), el("span", { text: "spans" + (t.spans_dropped ? ` (+${t.spans_dropped} dropped)` : "") })),
    el("div", { class: "kpi" }, el("b", { text: String(services.length) }), el("span", { text: "services" })),
    el("div", { class: "kpi" }, el("b", {}, t.error ? stateBadge("error") : stateBadge("OK")), el("span", { text: "status" })),
    el("div", { class: "kpi" }, el("b", { class: "mono", text: t.trace_id }), el("span", { text: "trace id" }))));
  root.append(el("ul", { class: "links", "aria-label": "Related" }, services.map((s) => el("li", {}, el("a", { href: link("service", s), text: s }), " (", el("a", { href: link("patterns", "", { service: s }), text: "patterns" }), ")"))));
  const details = el("div", { class: "panel side", "aria-live": "polite" });
  const show = (s) => {
    clear(details);
    const meta = Object.entries(s.meta || {}).sort();
    details.append(el("h2", { text: `${s.service} · ${s.name}` }), el("dl", { class: "meta" },
      el("dt", { text: "resource" }), el("dd", { text: s.resource }),
      el("dt", { text: "duration" }), el("dd", { text: fmtMs(s.duration / 1e6) }),
      el("dt", { text: "start" }), el("dd", { text: new Date(s.start / 1e6).toISOString() }),
      el("dt", { text: "span id" }), el("dd", { text: String(s.span_id) }),
      el("dt", { text: "parent id" }), el("dd", { text: String(s.parent_id) }),
      el("dt", { text: "error" }), el("dd", { text: s.error ? "yes" : "no" }),
      meta.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])));
  };
  const fg = flameGraph(t, show);
  root.append(el("h2", { text: "Flame graph" }), el("div", { class: "row" }, el("div", { class: "grow" }, fg.svg, el("p", { class: "muted", text: "Tab to a span, Enter for its details; ↑/↓ move between spans." })), details));
  if (fg.first) show(fg.first);
  const logs = t.logs || [];
  root.append(el("h2", { text: `Logs of this trace (${logs.length}${t.logs_truncated ? ", +" + t.logs_truncated + " more" : ""})` }));
  if (!logs.length) root.append(el("p", { class: "muted", text: "No log line carries this trace's id (dd.trace_id / trace_id) or one of its spans' x-request-id." }));
  else {
    root.append(el("table", { "aria-label": "Log lines of this trace" }, el("thead", {}, el("tr", {}, ["Time (UTC)", "Status", "Service", "Source", "Matched by", "Message"].map((h) => el("th", { text: h })))),
      el("tbody", {}, logs.map((l) => el("tr", {}, el("td", { class: "num", text: fmtTime(l.t) }), el("td", {}, stateBadge(l.status)), el("td", { text: l.service }), el("td", { text: l.source }), el("td", { text: l.matched_by }), el("td", { class: "mono wrap", text: l.message }))))));
  }
  return null;
}

// ---------- Log Patterns ----------
function statusMix(statuses, total) {
  const bar = el("span", { class: "mix", "aria-hidden": "true" });
  const text = [];
  for (const [s, n] of Object.entries(statuses || {}).sort((a, b) => b[1] - a[1])) {
    const i = el("i", { class: "s-" + s });
    i.style.width = ((n / Math.max(1, total)) * 100).toFixed(1) + "%";
    bar.append(i);
    text.push(`${s} ${n}`);
  }
  return el("span", {}, bar, el("span", { text: text.join(", ") }));
}
async function viewPatterns(root, _arg, params) {
  const service = params.get("service") || "";
  const status = params.get("status") || "";
  setTitle("Log Patterns" + (service ? ": " + service : ""));
  const all = await api("/api/v1/patterns");
  const pats = (all && all.patterns) || [];
  const services = [...new Set(pats.map((p) => p.service))].sort();
  const statuses = [...new Set(pats.flatMap((p) => Object.keys(p.statuses || {})))].sort();
  const go = () => {
    const q = {};
    if (svc.value) q.service = svc.value;
    if (st.value) q.status = st.value;
    location.hash = link("patterns", "", q);
  };
  const svc = el("select", { id: "pat-service", onchange: go }, el("option", { value: "", text: "all services" }), services.map((s) => el("option", { value: s, text: s, selected: s === service })));
  const st = el("select", { id: "pat-status", onchange: go }, el("option", { value: "", text: "any status" }), statuses.map((s) => el("option", { value: s, text: s, selected: s === status })));
  const search = el("input", { type: "search", id: "pat-search", placeholder: "text in template", oninput: () => refresh() });
  root.append(el("div", { class: "controls" }, el("label", { for: "pat-service" }, "Service", svc), el("label", { for: "pat-status" }, "Status", st), el("label", { for: "pat-search" }, "Search", search)));
  const box = el("div", {});
  root.append(box);
  async function refresh() {
    const q = [];
    if (service) q.push("service=" + encodeURIComponent(service));
    if (status) q.push("status=" + encodeURIComponent(status));
    const r = await api("/api/v1/patterns" + (q.length ? "?" + q.join("&") : ""));
    const needle = search.value.trim().toLowerCase();
    const list = ((r && r.patterns) || []).filter((p) => !needle || p.template.toLowerCase().includes(needle));
    clear(box);
    if (!list.length) { box.append(el("p", { class: "notice", text: "No patterns for this selection (logs.enabled must be on, and lines read)." })); return; }
    const tb = el("tbody", {});
    for (const p of list.slice(0, 300)) {
      tb.append(el("tr", { "data-pattern": String(p.id) },
        el("td", { class: "num", text: String(p.count) }),
        el("td", {}, statusMix(p.statuses, p.count)),
        el("td", {}, el("a", { href: link("service", p.service), text: p.service }), el("div", { class: "muted", text: p.source })),
        el("td", { class: "wrap" }, el("code", { class: "template", text: p.template }),
          keptDetails(`pattern:${p.service}/${p.source}/${p.id}`, `regex and ${p.samples.length} samples`, false, el("p", {}, el("code", { class: "wrap", text: p.regex })), el("ul", { class: "samples" }, p.samples.map((s) => el("li", { text: s })))))));
    }
    box.append(el("p", { class: "muted", text: `${list.length} patterns, ${list.reduce((a, p) => a + p.count, 0)} lines.` }),
      el("table", { "aria-label": "Log patterns" }, el("thead", {}, el("tr", {}, el("th", { class: "num", text: "Count" }), el("th", { text: "Status mix" }), el("th", { text: "Service / source" }), el("th", { text: "Pattern" }))), tb));
  }
  await refresh();
  return { refresh };
}

// ---------- Monitors ----------
function monitorCard(m, showService, withChart = true) {
  const th = [];
  if (m.band && m.band.lower !== undefined) th.push(`band [${fmtNum(m.band.lower)}, ${fmtNum(m.band.upper)}]`);
  if (m.warning !== null && m.warning !== undefined) th.push(`warning ${m.warning}`);
  if (m.critical !== null && m.critical !== undefined) th.push(`critical ${m.critical}`);
  const tr = (m.transitions || []).slice(-8).reverse();
  const card = el("article", { class: "card " + String(m.state || "NO DATA").replace(/\s+/g, ""), "data-monitor": m.id || m.name, "data-state": m.state, "aria-label": `${m.name}: ${m.state}` },
    el("h3", {}, stateBadge(m.state), el("span", { text: m.name }), el("span", { class: "muted", text: m.type })),
    el("dl", { class: "meta" },
      showService && m.service ? [el("dt", { text: "service" }), el("dd", {}, el("a", { href: link("service", m.service), text: m.service }))] : null,
      m.query ? [el("dt", { text: "query" }), el("dd", { text: m.query })] : null,
      m.signal ? [el("dt", { text: "signal" }), el("dd", { text: m.signal })] : null,
      el("dt", { text: "value" }), el("dd", { text: m.value === null || m.value === undefined ? "no data" : fmtNum(m.value, 3) }),
      th.length ? [el("dt", { text: "thresholds" }), el("dd", { text: th.join(" · ") })] : null,
      el("dt", { text: "since" }), el("dd", { text: `${fmtTime(m.since)} (${fmtAgo(m.since)})` }),
      m.message ? [el("dt", { text: "why" }), el("dd", { text: m.message })] : null));
  if (tr.length) {
    card.append(keptDetails(`transitions:${m.id || m.name}`, `${(m.transitions || []).length} transitions`, m.state === "ALERT",
      el("table", { "aria-label": "Transitions of " + m.name }, el("thead", {}, el("tr", {}, ["At (UTC)", "From → to", "Value", "Band / threshold", "Reason"].map((h) => el("th", { text: h })))),
        el("tbody", {}, tr.map((x) => el("tr", {}, el("td", { text: fmtTime(x.at) }), el("td", {}, stateBadge(x.from), " → ", stateBadge(x.to)), el("td", { class: "num", text: x.value === null ? "–" : fmtNum(x.value, 3) }),
          el("td", { text: x.band ? `[${fmtNum(x.band.lower)}, ${fmtNum(x.band.upper)}]` : x.threshold !== null && x.threshold !== undefined ? String(x.threshold) : "–" }), el("td", { class: "wrap", text: x.reason || "" })))))));
  }
  const hist = (m.history || []).map((p) => ({ ...p, t: toSec(p.t) }));
  const h = hist.filter((p) => p.value !== null && p.value !== undefined);
  if (withChart && h.length > 1) {
    card.append(lineChart({ title: "Value and anomaly band", unit: "", height: 150, series: [{ name: "value", color: "#1f2328", points: h.map((p) => ({ t: p.t, v: p.value })) }],
      band: hist.filter((p) => p.lower !== null && p.lower !== undefined).map((p) => ({ t: p.t, lower: p.lower, upper: p.upper })),
      anomalies: h.filter((p) => p.anomalous).map((p) => ({ t: p.t, v: p.value })) }));
  }
  return card;
}
async function viewMonitors(root) {
  setTitle("Monitors and Watchdog");
  const box = el("div", {});
  root.append(box);
  async function refresh() {
    const mon = await monitorsAll();
    clear(box);
    if (!mon.available) { box.append(el("p", { class: "notice", text: "This agent serves no /api/v1/monitors or /api/v1/watchdog (monitors are not built in)." })); return; }
    const rank = { ALERT: 0, WARN: 1, "NO DATA": 2, OK: 3 };
    const sort = (l) => l.slice().sort((a, b) => (rank[a.state] ?? 4) - (rank[b.state] ?? 4) || String(a.name).localeCompare(String(b.name)));
    const count = (l, s) => l.filter((m) => m.state === s).length;
    box.append(el("p", { class: "kpis" }, ["ALERT", "WARN", "OK", "NO DATA"].map((s) => el("span", { class: "kpi" }, el("b", { text: String(count(mon.all, s)) }), el("span", { text: s })))));
    box.append(el("h2", { text: `Monitors (${mon.configured.length})` }));
    if (!mon.configured.length) box.append(el("p", { class: "muted", text: "No monitors configured (monitors: in the agent's config)." }));
    for (const m of sort(mon.configured)) box.append(monitorCard(m, true));
    box.append(el("h2", { text: `Watchdog findings (${mon.findings.length})` }));
    if (!mon.findings.length) box.append(el("p", { class: "muted", text: "Watchdog has found nothing unusual." }));
    for (const m of sort(mon.findings)) box.append(monitorCard(m, true));
    const wd = mon.watchdog.filter((m) => !mon.findings.some((f) => (f.id || f.name) === (m.id || m.name)));
    if (wd.length) {
      const d = keptDetails("watchdog-monitors", `Watchdog monitors (${wd.length}): request rate, error rate and p95 latency of every service`, false);
      d.id = "watchdog-list";
      // At a glance: one row per Watchdog monitor (a finding gets its card above).
      d.append(el("table", { "aria-label": "Watchdog monitors" },
        el("thead", {}, el("tr", {}, ["State", "Service", "Signal", "Value", "Since", "Why"].map((h) => el("th", { text: h })))),
        el("tbody", {}, sort(wd).map((m) => el("tr", { "data-monitor": m.id || m.name, "data-state": m.state },
          el("td", {}, stateBadge(m.state)),
          el("td", {}, m.service ? el("a", { href: link("service", m.service), text: m.service }) : "–"),
          el("td", { text: m.signal || m.type }),
          el("td", { class: "num", text: m.value === null || m.value === undefined ? "no data" : fmtNum(m.value, 3) }),
          el("td", { text: fmtAgo(m.since) }),
          el("td", { class: "wrap", text: m.message || "" }))))));
      box.append(d);
    }
  }
  await refresh();
  return { refresh };
}

// ---------- Checks ----------
async function viewChecks(root) {
  setTitle("Checks");
  const box = el("div", {});
  root.append(el("p", { class: "muted", text: "Scrape targets scheduled from the config and autodiscovery, with their last run." }), box);
  async function refresh() {
    const r = await api("/api/v1/checks");
    const list = (r && r.checks) || [];
    clear(box);
    if (!list.length) { box.append(el("p", { class: "notice", text: "No checks scheduled." })); return; }
    const tb = el("tbody", {});
    for (const c of list) {
      tb.append(el("tr", { "data-check": c.id },
        el("td", {}, stateBadge(c.status)),
        el("td", {}, el("b", { text: c.check }), el("div", { class: "muted mono wrap", text: c.id })),
        el("td", { class: "mono wrap", text: c.url }),
        el("td", { class: "num", text: c.last_run ? fmtAgo(c.last_run) : "never" }),
        el("td", { class: "num", text: String(c.samples) }),
        el("td", { class: "num", text: String(c.metrics) }),
        el("td", { class: "num", text: fmtMs(c.duration_ms) }),
        el("td", { class: "num", text: `${c.runs} / ${c.failures}` }),
        el("td", { class: "wrap" + (c.last_error ? " err-text" : " muted"), text: c.last_error || "none" })));
    }
    box.append(el("table", { "aria-label": "Scrape targets" }, el("thead", {}, el("tr", {}, el("th", { text: "Health" }), el("th", { text: "Check" }), el("th", { text: "Endpoint" }), ["Last run", "Samples", "Metrics", "Duration", "Runs / failures"].map((h) => el("th", { class: "num", text: h })), el("th", { text: "Last error" }))), tb));
  }
  await refresh();
  return { refresh };
}

const VIEWS = {
  map: viewMap,
  services: viewServices,
  service: viewService,
  metric: viewMetric,
  traces: viewTraces,
  trace: viewTrace,
  patterns: viewPatterns,
  monitors: viewMonitors,
  checks: viewChecks,
};

window.addEventListener("hashchange", () => { render(); document.getElementById("main").focus({ preventScroll: true }); });
window.addEventListener("DOMContentLoaded", () => {
  header().catch(() => {});
  render();
  timer = setInterval(tick, REFRESH_MS);
});
