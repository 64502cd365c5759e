// Loads the agent's status page in real headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core) and asserts what a person sees. Started by ../ui.rs, which
// runs the agent and feeds it; configured by the environment:
//
//   MESHMON_UI_URL          the agent's API base, e.g. http://127.0.0.1:5002
//   MESHMON_UI_SCREENSHOTS  folder for the PNG screenshots
//   MESHMON_UI_EXPECT       JSON: { services: [..], edges: [[from,to],..], trace_service,
//                           trace_logs: bool, monitors: "absent"|"listed",
//                           alert: { service, timeout_s } | null, chart_service }
//
// Exit status 0 when every assertion held; 1 with the failure on stderr otherwise.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const base = process.env.MESHMON_UI_URL;
const shots = process.env.MESHMON_UI_SCREENSHOTS || "screenshots";
const expect = JSON.parse(process.env.MESHMON_UI_EXPECT || "{}");
if (!base) {
  console.error("MESHMON_UI_URL is not set");
  process.exit(2);
}
fs.mkdirSync(shots, { recursive: true });
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "meshmon-chromium-"));
const report = { external_requests: [], console_errors: [], steps: [] };

function fail(msg) {
  throw new Error(msg);
}
function step(name, detail) {
  report.steps.push({ name, ...detail });
  console.log(`ok: ${name} ${JSON.stringify(detail)}`);
}

const ctx = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.MESHMON_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1440, height: 900 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let code = 0;
try {
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.setDefaultTimeout(Number(process.env.MESHMON_UI_TIMEOUT_MS || 60000));
  // No request may leave the agent's origin while the page loads and runs.
  await page.route("**/*", (route) => {
    const u = route.request().url();
    if (u.startsWith(base + "/") || u === base) return route.continue();
    report.external_requests.push(u);
    return route.abort();
  });
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    // The page tolerates an agent without the monitors API (404), as it says on screen.
    const u = (m.location() && m.location().url) || "";
    if (/status of 404/.test(m.text()) && /\/api\/v1\/(monitors|watchdog)$/.test(u)) return;
    report.console_errors.push(`${m.text()} (${u})`);
  });
  page.on("pageerror", (e) => report.console_errors.push(String(e)));
  const shot = async (name) => {
    const p = path.join(shots, name + ".png");
    await page.screenshot({ path: p, fullPage: true });
    return p;
  };

  // 1. Service Map: every service a node, every edge drawn with its rate and error share.
  await page.goto(base + "/#/map");
  await page.waitForFunction((n) => document.querySelectorAll("svg.map g.node").length >= n, (expect.services || []).length || 1);
  await page.waitForFunction((n) => document.querySelectorAll("svg.map g.edge").length >= n, (expect.edges || []).length);
  const nodes = await page.$$eval("svg.map g.node", (gs) => gs.map((g) => g.dataset.service));
  for (const s of expect.services || []) if (!nodes.includes(s)) fail(`service ${s} is not in the map (${nodes})`);
  const edges = await page.$$eval("svg.map g.edge", (gs) => gs.map((g) => [g.dataset.from, g.dataset.to, g.querySelector("text.rate").textContent, g.querySelector("text.err").textContent]));
  for (const [f, t] of expect.edges || []) if (!edges.some((e) => e[0] === f && e[1] === t)) fail(`edge ${f} → ${t} is not in the map (${JSON.stringify(edges)})`);
  for (const e of edges) if (!/\d/.test(e[2]) || !/%/.test(e[3])) fail(`edge label without rate or error share: ${e}`);
  // The rate over a window appears once two polls have seen the counts move.
  await page.waitForFunction(() => [...document.querySelectorAll("svg.map g.edge text.rate")].some((t) => /\/s$/.test(t.textContent)), null, { timeout: 20000 });
  step("service map", { nodes, edges: edges.length, screenshot: await shot("01-service-map") });

  // 1b. The faulty service is marked while the fault lasts.
  if (expect.alert && expect.alert.service) {
    const s = expect.alert.service;
    await page.waitForFunction((svc) => {
      const g = document.querySelector(`svg.map g.node[data-service="${svc}"]`);
      return g && g.dataset.state === "ALERT" && g.classList.contains("alert");
    }, s, { timeout: (expect.alert.timeout_s || 120) * 1000, polling: 1000 });
    const badge = await page.$eval(`svg.map g.node[data-service="${s}"] text.badge`, (t) => t.textContent);
    step("faulty service marked", { service: s, badge, screenshot: await shot("02-service-map-alert") });
  }

  // 2. Keyboard: Tab reaches a map node, Enter opens the service overview.
  await page.focus(`svg.map g.node[data-service="${expect.chart_service}"]`);
  await page.keyboard.press("Enter");
  await page.waitForURL((u) => u.hash.startsWith("#/service/"));
  // 3. Service overview: request rate, errors and latency charts with points.
  await page.waitForFunction(() => document.querySelectorAll("svg.chart").length >= 3);
  await page.waitForFunction(() => document.querySelector("svg.chart circle.pt") !== null, null, { timeout: 30000 });
  const charts = await page.$$eval("svg.chart", (ss) => ss.map((s) => ({ label: s.getAttribute("aria-label"), points: s.querySelectorAll("circle.pt").length })));
  if (!charts.some((c) => c.points > 1)) fail(`no chart has points: ${JSON.stringify(charts)}`);
  const title = await page.textContent("#title");
  step("service overview", { title, charts, screenshot: await shot("03-service-overview") });
  // The service links to its scraped Istio series: one opens as a chart with points.
  const scraped = await page.$("#scraped-metrics + ul a");
  if (expect.scraped_metrics && !scraped) fail("the service overview links to no scraped metric");
  if (scraped) {
    const name = await scraped.textContent();
    await scraped.click();
    await page.waitForURL((u) => u.hash.startsWith("#/metric/"));
    await page.waitForFunction(() => document.querySelector("svg.chart circle.pt") !== null);
    const series = await page.$$eval("#view ol li", (l) => l.length);
    step("scraped metric of the service", { metric: name, series, screenshot: await shot("03b-scraped-metric") });
  }
  await page.goto(base + "/#/services");
  await page.waitForSelector("table[aria-label='Services'] tbody tr");
  const listed = await page.$$eval("table[aria-label='Services'] tbody tr td:first-child a", (a) => a.map((x) => x.textContent));
  for (const s of expect.services || []) if (!listed.includes(s)) fail(`service ${s} missing from the services table (${listed})`);
  step("services table", { services: listed.length, screenshot: await shot("03c-services") });

  // 4. Traces of a service, then one trace's flame graph with its spans and logs.
  await page.goto(base + `/#/traces?service=${encodeURIComponent(expect.trace_service)}`);
  await page.waitForSelector("table[aria-label='Slowest traces'] tbody tr a");
  const slowRows = await page.$$eval("table[aria-label='Slowest traces'] tbody tr", (r) => r.length);
  await shot("04-traces");
  // Open an error trace when there is one (it has the logs), else the slowest.
  const errLink = await page.$("table[aria-label='Most recent traces'] tbody tr:has(.state.error) a");
  await (errLink || (await page.$("table[aria-label='Slowest traces'] tbody tr a"))).click();
  await page.waitForSelector("svg.flame g.span");
  const spans = await page.$$eval("svg.flame g.span", (gs) => gs.map((g) => g.dataset.service));
  if (spans.length < 2) fail(`the flame graph shows ${spans.length} spans`);
  // Keyboard: focus the second span, Enter shows its details.
  await page.focus("svg.flame g.span:nth-of-type(2)");
  await page.keyboard.press("Enter");
  const detail = await page.textContent(".side h2");
  const logRows = await page.$$eval("table[aria-label='Log lines of this trace'] tbody tr", (r) => r.length).catch(() => 0);
  if (expect.trace_logs && logRows < 1) fail("the trace lists no log lines");
  step("trace flame graph", { slow_rows: slowRows, spans: spans.length, services: [...new Set(spans)], detail, log_lines: logRows, screenshot: await shot("05-trace-flame-graph") });

  // 5. Log Patterns: a pattern with its count; the status filter narrows the list.
  await page.goto(base + "/#/patterns");
  await page.waitForSelector("tr[data-pattern]");
  const pats = await page.$$eval("tr[data-pattern]", (rs) => rs.map((r) => ({ count: Number(r.querySelector("td.num").textContent), template: r.querySelector("code.template").textContent })));
  if (!(pats[0].count > 0)) fail(`top pattern has no count: ${JSON.stringify(pats[0])}`);
  await shot("06-log-patterns");
  const statuses = await page.$$eval("#pat-status option", (o) => o.map((x) => x.value).filter(Boolean));
  if (statuses.includes("error")) {
    await page.selectOption("#pat-status", "error");
    await page.waitForURL((u) => u.hash.includes("status=error"));
    await page.waitForSelector("tr[data-pattern]");
    const mixes = await page.$$eval("tr[data-pattern]", (rs) => rs.map((r) => r.children[1].textContent));
    if (!mixes.every((m) => m.includes("error"))) fail(`status filter kept patterns without errors: ${mixes}`);
  }
  step("log patterns", { patterns: pats.length, top: pats[0], statuses });

  // 6. Monitors and Watchdog.
  await page.goto(base + "/#/monitors");
  if (expect.monitors === "listed") {
    await page.waitForSelector("[data-monitor]", { state: "attached" });
    // Open the collapsed list of Watchdog monitors, as a person would to see them.
    const more = await page.$("#watchdog-list:not([open]) > summary");
    if (more) {
      await more.click();
      await page.waitForSelector("table[aria-label='Watchdog monitors'] tr[data-monitor], article.card");
    }
    const cards = await page.$$eval("[data-monitor]", (cs) => cs.map((c) => [c.dataset.monitor, c.dataset.state]));
    step("monitors listed", { monitors: cards.length, screenshot: await shot("07-monitors") });
    if (expect.alert && expect.alert.monitor_recovers) {
      // A monitor in ALERT (or, if the page came late, one whose transitions show it went
      // to ALERT), later back to OK: the page refreshes itself.
      const fired = await page.waitForFunction(() => {
        const cards = [...document.querySelectorAll("article.card")];
        const now = cards.find((c) => c.dataset.state === "ALERT");
        if (now) return { id: now.dataset.monitor, seen: "state" };
        const past = cards.find((c) => [...c.querySelectorAll("tbody tr")].some((r) => {
          const s = r.querySelectorAll(".state");
          return s.length === 2 && s[1].textContent === "ALERT";
        }));
        return past ? { id: past.dataset.monitor, seen: "transition" } : null;
      }, null, { timeout: (expect.alert.timeout_s || 120) * 1000, polling: 1000 }).then((h) => h.jsonValue());
      step("monitor in ALERT", { ...fired, screenshot: await shot("08-monitor-alert") });
      await page.waitForFunction((id) => {
        const c = [...document.querySelectorAll("article.card")].find((x) => x.dataset.monitor === id);
        return c && c.dataset.state === "OK";
      }, fired.id, { timeout: (expect.alert.recover_timeout_s || 180) * 1000, polling: 1000 });
      const trans = await page.$$eval("article.card", (cs, id) => {
        const c = cs.find((x) => x.dataset.monitor === id);
        return [...c.querySelectorAll("tbody tr")].map((r) => [...r.querySelectorAll(".state")].map((s) => s.textContent).join("→"));
      }, fired.id);
      if (!trans.some((t) => t.endsWith("→OK")) || !trans.some((t) => t.endsWith("→ALERT"))) fail(`transitions of ${fired.id} do not show ALERT then OK: ${trans}`);
      step("monitor ALERT then OK", { monitor: fired.id, transitions: trans, screenshot: await shot("09-monitor-recovered") });
    }
  } else {
    await page.waitForSelector("#view .notice");
    step("monitors API absent, said so", { text: await page.textContent("#view .notice"), screenshot: await shot("07-monitors") });
  }

  // 7. Checks: scrape targets with health and sample counts.
  await page.goto(base + "/#/checks");
  await page.waitForSelector("tr[data-check]");
  const checks = await page.$$eval("tr[data-check]", (rs) => rs.map((r) => ({ health: r.querySelector(".state").textContent, samples: Number(r.children[4].textContent) })));
  if (!checks.some((c) => c.health === "up" && c.samples > 0)) fail(`no healthy target with samples: ${JSON.stringify(checks)}`);
  step("checks", { checks, screenshot: await shot("10-checks") });

  // Nothing left the origin; no script error, no CSP violation.
  if (report.external_requests.length) fail(`requests to other origins: ${report.external_requests}`);
  if (report.console_errors.length) fail(`console errors: ${report.console_errors.join(" | ")}`);
} catch (e) {
  code = 1;
  console.error("FAILED: " + (e && e.stack ? e.stack : e));
  try {
    const p = ctx.pages()[0];
    if (p) await p.screenshot({ path: path.join(shots, "failure.png"), fullPage: true });
  } catch (_) { /* best effort */ }
} finally {
  await ctx.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
  fs.writeFileSync(path.join(shots, "report.json"), JSON.stringify(report, null, 2));
}
process.exit(code);
