// Drives the dashboard in headless Chromium (playwright-core) against a live supervisor.
// Usage: node dashboard_browser.js <playwright-core dir> <chromium> <dashboard url> <screenshot>
// Prints one JSON line with what it saw; exits 1 with the reason and the page text on failure.
"use strict";

const [pwDir, chromiumPath, url, screenshot] = process.argv.slice(2);
const { chromium } = require(pwDir);

const WAIT_MS = 30000; // bound of every wait on the page (agent spawn + a demo turn)
const XSS = "<img src=x onerror=window.__pwned=1>";

async function transcriptHas(page, text) {
  await page.waitForFunction(
    (t) => document.getElementById("transcript").textContent.includes(t),
    text,
    { timeout: WAIT_MS },
  );
}

function count(haystack, needle) {
  return haystack.split(needle).length - 1;
}

async function setVisibility(page, state) {
  await page.evaluate((s) => {
    Object.defineProperty(document, "visibilityState", { value: s, configurable: true });
    document.dispatchEvent(new Event("visibilitychange"));
  }, state);
}

(async () => {
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
  });
  const seen = {};
  let page;
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    // count EventSources open at once in each tab
    await context.addInitScript(() => {
      const Native = window.EventSource;
      window.__esOpen = 0;
      window.__esMax = 0;
      window.EventSource = class extends Native {
        constructor(...args) {
          super(...args);
          window.__esOpen += 1;
          window.__esMax = Math.max(window.__esMax, window.__esOpen);
        }
        close() {
          if (this.readyState !== Native.CLOSED) window.__esOpen -= 1;
          super.close();
        }
      };
    });
    page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(url);
    await page.waitForSelector("#conn.live", { timeout: WAIT_MS });

    // submit a task from the form; the page selects it once it appears
    await page.fill("#submit-prompt", `${XSS}\n/stream 5\n/edit notes.txt hi`);
    await page.fill("#submit-title", "<b>bold title</b>");
    await page.click("#submit-button");
    await page.waitForSelector(".node.selected", { timeout: WAIT_MS });
    seen.task = await page.getAttribute(".node.selected", "data-task");
    await transcriptHas(page, "stream 5/5");

    // approve the permission request by clicking
    const allow = page.locator('#permissions button[data-decision="allow"]');
    await allow.waitFor({ timeout: WAIT_MS });
    seen.permissionText = await page.textContent("#permissions");
    await allow.click();
    await transcriptHas(page, "edited ");
    await page.waitForFunction(() => document.querySelectorAll("#permissions li").length === 0, null, {
      timeout: WAIT_MS,
    });

    // hide the tab: the stream closes; a reply that lands meanwhile shows once after resuming
    await setVisibility(page, "hidden");
    seen.closedWhenHidden = await page.evaluate(() => window.__mh.es === null && window.__esOpen === 0);
    await page.fill("#message-text", "while hidden");
    await page.click("#message-button");
    await setVisibility(page, "visible");
    await transcriptHas(page, "echo: while hidden");

    // a second tab on the same task
    const second = await context.newPage();
    await second.goto(url);
    await second.waitForSelector(`.node[data-task="${seen.task}"]`, { timeout: WAIT_MS });
    await second.click(`.node[data-task="${seen.task}"]`);
    await transcriptHas(second, "echo: while hidden");

    // send a message from the box
    await page.fill("#message-text", "hello from the browser");
    await page.keyboard.press("Control+Enter");
    await transcriptHas(page, "echo: hello from the browser");
    await transcriptHas(second, "echo: hello from the browser");

    const text = await page.innerText("#transcript"); // visible text: hidden protocol frames excluded
    seen.streamChunksOnce = count(text, "stream 5/5") === 1;
    seen.hiddenReplyOnce = count(text, "echo: while hidden") === 1;
    seen.secondTabSame = count(await second.innerText("#transcript"), "stream 5/5") === 1;
    seen.literalXss = text.includes("echo: " + XSS);
    seen.treeTitle = await page.textContent(".node.selected .title");
    seen.injected = await page.evaluate(
      () => window.__pwned === 1 || document.querySelectorAll("#transcript img, #tree b").length > 0,
    );
    seen.maxOpenStreams = Math.max(
      await page.evaluate(() => window.__esMax),
      await second.evaluate(() => window.__esMax),
    );
    seen.pageErrors = errors;
    seen.scroll = await page.evaluate(() => {
      const box = document.getElementById("transcript");
      return [box.scrollTop, box.clientHeight, box.scrollHeight];
    });
    await page.screenshot({ path: screenshot });
    console.log(JSON.stringify(seen));
    await browser.close();
  } catch (error) {
    console.error(String(error && error.stack ? error.stack : error));
    console.error("seen so far: " + JSON.stringify(seen));
    if (page) {
      try {
        console.error("page text:\n" + (await page.textContent("body")));
        await page.screenshot({ path: screenshot });
      } catch (inner) {
        console.error("no page text: " + inner);
      }
    }
    await browser.close();
    process.exit(1);
  }
})();
