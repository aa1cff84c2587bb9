/* Debian's Firefox ESR, driven over WebDriver BiDi by puppeteer-core, for the
 * Python tests (tests/support/firefox.py): one JSON command per line on stdin, one
 * JSON answer per line on stdout.
 *
 * Firefox's BiDi sees web pages only. The extension's own pages are reached the
 * way Firefox's own tests reach them, from its chrome window (BiDi's
 * "moz:scope": "chrome", allowed by --remote-allow-system-access):
 *   - an extension page opened in a background tab (BiDi refuses to navigate
 *     to moz-extension: URLs) evaluates extension API calls (`ext`);
 *   - the toolbar popup, a panel of the chrome window, is read and clicked
 *     through a frame script loaded into its browser (`popup`).
 * The popup itself is opened as a person opens it: the real shortcut, pressed
 * with xdotool by the Python side.
 *
 *   NODE_PATH=tools/webext/node_modules node tests/support/firefox_driver.js
 */
"use strict";

const readline = require("node:readline");
const puppeteer = require("puppeteer-core");

let browser = null;
let page = null; // the person's tab
let chromeContext = null;
let extContext = null;
let extUuid = null;
let messages = 0;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function bidi(method, params) {
  return (await browser.connection.send(method, params)).result;
}

/** Evaluate `expression` (may be a promise) in a BiDi context; its JSON value. */
async function evaluate(context, expression) {
  const wrapped = `Promise.resolve((${expression})).then((v) => JSON.stringify(v === undefined ? null : v))`;
  const out = await bidi("script.evaluate", {
    expression: wrapped, target: { context }, awaitPromise: true, resultOwnership: "none",
  });
  if (out.type === "exception") throw new Error(out.exceptionDetails.text);
  return JSON.parse(out.result.value);
}

function topContexts(tree) {
  return tree.contexts.map((c) => ({ context: c.context, url: c.url }));
}

/** A code run in the popup's own process by a frame script, with the popup's
 * window in scope (through Xray wrappers: its DOM, not its scripts' variables). */
function popupCall(code) {
  const name = `mecene-probe-${++messages}`;
  const frameScript = `
    (() => {
      // The popup's globals the tests read, through Xrays.
      const window = content, document = content.document, location = content.location;
      const performance = content.performance;
      const getComputedStyle = (el) => content.getComputedStyle(el);
      Promise.resolve().then(() => (${code}))
        .then((v) => sendAsyncMessage(${JSON.stringify(name)}, { ok: true, v: JSON.stringify(v === undefined ? null : v) }),
              (e) => sendAsyncMessage(${JSON.stringify(name)}, { ok: false, e: String(e) }));
    })();`;
  return `new Promise((resolve) => {
    const b = document.querySelector("browser.webextension-popup-browser");
    if (!b || !b.messageManager) { resolve({ ok: false, e: "no popup" }); return; }
    const mm = b.messageManager;
    const on = (m) => { mm.removeMessageListener(${JSON.stringify(name)}, on); resolve(m.data); };
    mm.addMessageListener(${JSON.stringify(name)}, on);
    mm.loadFrameScript("data:application/javascript," + encodeURIComponent(${JSON.stringify(frameScript)}), false);
    setTimeout(() => resolve({ ok: false, e: "no answer from the popup" }), 5000);
  })`;
}

const commands = {
  /** `extension`: a directory or .xpi to install, for this run only (as
   * about:debugging does) or, with `permanent`, for good (as about:addons'
   * "Install Add-on From File…" does; unsigned, it needs the profile's
   * xpinstall.signatures.required=false, which Firefox ESR honours).
   * `installed`: the extension is in the profile already (a restart). */
  async launch({ executablePath, userDataDir, extension, permanent, installed, uuid, hosts, display, prefs }) {
    extUuid = uuid;
    browser = await puppeteer.launch({
      browser: "firefox",
      executablePath,
      userDataDir,
      headless: false,
      acceptInsecureCerts: true, // the test pages' self-signed certificate
      args: ["--remote-allow-system-access", "--width=1200", "--height=800"],
      env: { ...process.env, DISPLAY: display },
      extraPrefsFirefox: {
        // The extension's internal UUID, so that its pages have a known address.
        "extensions.webextensions.uuids": JSON.stringify({ "extension@mecene.example": uuid }),
        // The test sites' host names resolve to this machine (Chromium: --host-resolver-rules).
        "network.dns.localDomains": hosts.join(","),
        "browser.aboutwelcome.enabled": false,
        "browser.startup.homepage_override.mstone": "ignore",
        ...(permanent || installed ? { "xpinstall.signatures.required": false } : {}),
        ...(prefs || {}),
      },
    });
    page = (await browser.pages())[0];
    if (!extension && !installed) return { id: null, version: await browser.version() }; // bare (bench)
    let id = "extension@mecene.example";
    if (extension && permanent) {
      const type = extension.endsWith(".xpi") ? "archivePath" : "path";
      id = (await bidi("webExtension.install", {
        extensionData: { type, path: extension }, "moz:permanent": true,
      })).extension;
    } else if (extension) {
      id = await browser.installExtension(extension);
    }
    const chromeTree = await bidi("browsingContext.getTree", { "moz:scope": "chrome" });
    chromeContext = chromeTree.contexts[0].context;
    // An extension page in a background tab, for the extension's APIs. Its
    // query keeps it apart from the options tab a person opens (Firefox's
    // openOptionsPage() brings forward a tab showing the options URL).
    await evaluate(chromeContext, `(gBrowser.addTab(${JSON.stringify(`moz-extension://${uuid}/options.html?harness`)},
      { triggeringPrincipal: Services.scriptSecurityManager.getSystemPrincipal(), inBackground: true }), true)`);
    for (let i = 0; i < 100 && !extContext; i++) {
      const tree = await bidi("browsingContext.getTree", {});
      const ext = topContexts(tree).find((c) => c.url.startsWith(`moz-extension://${uuid}/`));
      if (ext) extContext = ext.context;
      else await sleep(100);
    }
    if (!extContext) throw new Error("the extension's page did not open");
    // Its URL shows before its document has the extension's APIs: wait for them.
    for (let i = 0; i < 100; i++) {
      const ready = await evaluate(extContext,
        "typeof browser !== 'undefined' && document.readyState === 'complete'").catch(() => false);
      if (ready) break;
      await sleep(100);
    }
    const version = await browser.version();
    return { id, version, pid: browser.process().pid };
  },

  /** Type an address in the person's tab; `wait`: "load" or "commit". */
  async goto({ url, wait }) {
    await bidi("browsingContext.navigate", {
      context: page.mainFrame()._id, url, wait: wait === "commit" ? "none" : "complete",
    });
    return page.url();
  },

  async url() {
    return evaluate(page.mainFrame()._id, "location.href");
  },

  /** A real click (BiDi input actions) on an element of the page. */
  async click({ selector }) {
    await page.click(selector);
    return true;
  },

  async history({ delta }) {
    await bidi("browsingContext.traverseHistory", { context: page.mainFrame()._id, delta });
    return true;
  },

  async page({ expression }) {
    return evaluate(page.mainFrame()._id, expression);
  },

  async addScript({ path, content }) {
    await page.addScriptTag(content === undefined ? { path } : { content });
    return true;
  },

  async ext({ expression }) {
    return evaluate(extContext, expression);
  },

  async chrome({ expression }) {
    return evaluate(chromeContext, expression);
  },

  /** Install the extension at `path` for this run (bench/extension.py turns
   * it on and off in one profile): its id, and whether Firefox lets it read
   * the given origin (its host permission, which detection needs). */
  async installExt({ path, origin }) {
    const id = (await bidi("webExtension.install", { extensionData: { type: "path", path } })).extension;
    if (!chromeContext) {
      chromeContext = (await bidi("browsingContext.getTree", { "moz:scope": "chrome" })).contexts[0].context;
    }
    const reads = await evaluate(chromeContext,
      `WebExtensionPolicy.getByID(${JSON.stringify(id)}).canAccessURI(Services.io.newURI(${JSON.stringify(origin)}))`);
    return { id, reads };
  },

  async uninstallExt({ id }) {
    await bidi("webExtension.uninstall", { extension: id });
    return true;
  },

  /** Whether the toolbar popup is open, and its address. */
  async popupOpen() {
    return evaluate(chromeContext, `(() => {
      const b = document.querySelector("browser.webextension-popup-browser");
      const panel = b && b.closest("panel");
      return b && panel && panel.state === "open" ? b.currentURI.spec : null;
    })()`);
  },

  async popup({ expression }) {
    const out = await evaluate(chromeContext, popupCall(expression));
    if (!out.ok) throw new Error(out.e);
    return JSON.parse(out.v);
  },

  /** Firefox's own prompt (a doorhanger) when one is open: its text, and the
   * screen point of its main button, for a real click. */
  async prompt() {
    return evaluate(chromeContext, `(() => {
      const panel = PopupNotifications.panel;
      if (!panel || panel.state !== "open") return null;
      const note = panel.querySelector("popupnotification:not([hidden])");
      if (!note) return null;
      const button = note.querySelector(".popup-notification-primary-button");
      const r = button.getBoundingClientRect();
      return { id: note.id, text: note.textContent.replace(/\\s+/g, " ").trim(),
        button: button.label || button.textContent,
        point: [Math.round(window.mozInnerScreenX + r.left + r.width / 2),
                Math.round(window.mozInnerScreenY + r.top + r.height / 2)] };
    })()`);
  },

  /** The newest tab showing one of the extension's pages (not the harness's own). */
  async extensionTab({ suffix }) {
    for (let i = 0; i < 100; i++) {
      const tree = await bidi("browsingContext.getTree", {});
      const tabs = topContexts(tree).filter((c) => c.context !== extContext
        && c.url.startsWith(`moz-extension://${extUuid}/`) && c.url.endsWith(suffix));
      if (tabs.length) return tabs[tabs.length - 1].context;
      await sleep(100);
    }
    throw new Error(`no tab shows the extension's ${suffix}`);
  },

  /** The tab whose address starts with `prefix` (a page the extension opened). */
  async tabWith({ prefix }) {
    for (let i = 0; i < 150; i++) {
      const tree = await bidi("browsingContext.getTree", {});
      const tabs = topContexts(tree).filter((c) => c.context !== extContext && c.url.startsWith(prefix));
      if (tabs.length) return tabs[tabs.length - 1].context;
      await sleep(100);
    }
    throw new Error(`no tab shows ${prefix}`);
  },

  async tabEval({ context, expression }) {
    return evaluate(context, expression);
  },

  /** Real key presses and clicks (BiDi input actions) in another tab. */
  async tabType({ context, selector, text }) {
    const tab = (await browser.pages()).find((p) => p.mainFrame()._id === context);
    await tab.bringToFront();
    await tab.click(selector, { count: 3 }); // select what is there, as a person does
    await tab.type(selector, text);
    return true;
  },

  async tabClick({ context, selector }) {
    const tab = (await browser.pages()).find((p) => p.mainFrame()._id === context);
    await tab.click(selector);
    return true;
  },

  async tabClose({ context }) {
    await bidi("browsingContext.close", { context });
    await page.bringToFront();
    return true;
  },

  async close() {
    if (browser) await browser.close();
    browser = null;
    return true;
  },
};

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (e) {
    return;
  }
  const reply = { id: msg.id };
  try {
    const fn = commands[msg.cmd];
    if (!fn) throw new Error(`unknown command ${msg.cmd}`);
    reply.ok = true;
    reply.value = await fn(msg.args || {});
  } catch (e) {
    reply.ok = false;
    reply.error = String((e && e.message) || e);
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
  if (msg.cmd === "close") process.exit(0);
});
rl.on("close", async () => {
  if (browser) await browser.close().catch(() => {});
  process.exit(0);
});
