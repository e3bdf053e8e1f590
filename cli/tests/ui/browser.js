// Drives Debian's Chromium through playwright-core against Gale's web UI (cli/tests/ui.rs).
//   node browser.js URL OUT_DIR TOPOLOGY BROKEN_TOPOLOGY TOKEN
// Prints one JSON line: what it saw. Screenshots go to OUT_DIR.
"use strict";
const path = require("path");
const { chromium } = require(process.env.GALE_PLAYWRIGHT || "playwright-core");

(async () => {
  const [url, out, topology, broken, token] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.GALE_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const seen = { consoleErrors: [], dialogs: [] };
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on("console", m => { if (m.type() === "error") seen.consoleErrors.push(m.text()); });
    page.on("pageerror", e => seen.consoleErrors.push(String(e)));
    // Kill and rebalance ask for a wait, every action for confirmation, and the token once.
    page.on("dialog", async d => {
      seen.dialogs.push(d.type() + ": " + d.message());
      if (d.type() === "prompt") await d.accept(d.message().includes("token") ? token : "0");
      else await d.accept();
    });
    const response = await page.goto(url + "/");
    seen.csp = response.headers()["content-security-policy"] || "";
    await page.waitForSelector("a.topology-link", { timeout: 20000 });
    seen.topologiesListed = await page.$$eval("a.topology-link", as => as.map(a => a.textContent));
    await page.screenshot({ path: path.join(out, "cluster.png"), fullPage: true });

    await page.click(`a.topology-link >> text="${topology}"`);
    await page.waitForSelector("svg.graph g.node", { timeout: 20000 });
    seen.graphNodes = await page.$$eval("svg.graph g.node", ns => ns.map(n => n.getAttribute("data-id")));
    seen.edgeLabels = await page.$$eval("svg.graph g.edge text", ts => ts.map(t => t.textContent));
    const executed = async id => Number(await page.getAttribute(`[data-executed-of="${id}"]`, "data-raw"));
    seen.executedFirst = await executed("count");
    await page.waitForTimeout(4500);
    seen.executedSecond = await executed("count");
    seen.statusBefore = await page.textContent("#topology-status");
    await page.screenshot({ path: path.join(out, "topology.png"), fullPage: true });

    await page.click("#deactivate");
    await page.waitForFunction(() => document.querySelector("#topology-status")?.textContent === "INACTIVE", null, { timeout: 20000 });
    seen.statusAfter = await page.textContent("#topology-status");
    await page.screenshot({ path: path.join(out, "deactivated.png"), fullPage: true });

    // A topology whose error carries markup: shown as text, no element made of it.
    await page.goto(url + "/#/topology/" + encodeURIComponent(broken));
    await page.waitForSelector(".error", { timeout: 30000 });
    seen.errorText = await page.textContent("main");
    seen.injectedImages = await page.$$eval("main img", is => is.length);
    await page.screenshot({ path: path.join(out, "error-as-text.png"), fullPage: true });
  } catch (e) {
    seen.failure = String(e && e.stack || e);
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(seen));
})();
