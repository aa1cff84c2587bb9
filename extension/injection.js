/* Mécène service worker: when the detector is injected (a page loaded, the
 * worker started, the extension installed), and whether the extension may
 * read web pages at all (the popup asks for access).
 */
(() => {
  "use strict";
  const { MeceneStorage, MeceneChecks, MeceneTabs, MeceneFlattr } = globalThis;
  const { injectDetector, injections } = MeceneTabs;

  const { siteAccess } = MeceneTabs;
  /** How long a loaded page is shown before it is read. */
  const DETECT_AFTER_MS = 500;

  /** Access just granted: read the open pages, and flattr the page whose popup
   * asked for it, if its tab still shows it (as a pairing does). */
  chrome.permissions.onAdded.addListener(async () => {
    if (!(await siteAccess())) return;
    await scanTabs().catch(() => {});
    const wanted = await MeceneStorage.takeAccessWanted();
    if (!wanted || (await MeceneTabs.tabUrlNow(wanted.tabId)) !== wanted.url) return;
    if (await MeceneStorage.getToken()) {
      await MeceneFlattr.flattrTab(wanted.tabId, { expectUrl: wanted.url });
    }
  });

  /** The popup's actions about site access (background.js routes them). */
  const actions = {
    /** Whether the extension may read web pages. */
    async access() {
      return { granted: await siteAccess() };
    },

    /** The popup is about to ask for access: remember which page asked. */
    async accessWanted(args) {
      const tabId = MeceneChecks.tabIdOf(args);
      const url = tabId === null ? null : await MeceneTabs.tabUrlNow(tabId);
      if (url) await MeceneStorage.setAccessWanted({ tabId, url });
      return null;
    },
  };

  /** Each tab's latest load, counted: a page's delayed reading is skipped,
   * without asking the browser, when its tab has started another since. */
  const loads = new Map();

  async function onTabUpdated(tabId, change, tab) {
    const url = tab && tab.url;
    if (change.status === "loading") {
      loads.set(tabId, (loads.get(tabId) || 0) + 1);
      // The tab starts showing another document (a link, a redirect, Back or
      // Forward): what the worker knew belongs to the one it leaves. A reload
      // of the same address keeps it (the same thing, flattred or not).
      const known = await MeceneStorage.getTab(tabId);
      if (known && (typeof url !== "string" || MeceneChecks.withoutHash(url) !== known.url)) {
        await MeceneStorage.dropTab(tabId);
        await MeceneTabs.showBadge(tabId, [], false);
      }
      return;
    }
    if (change.status !== "complete") return;
    injections.push(`${tabId}: complete ${url ? "with url" : "without url"}`);
    // The URL can be missing (permissions still settling right after install):
    // try anyway, scripting refuses pages it may not touch.
    if (typeof url === "string" && !/^https?:/.test(url)) return;
    // Not at once: a page left within DETECT_AFTER_MS (a link followed, a
    // redirect, Back) is never read, and a page that stays is read once the
    // browser is done loading it, not while the next one loads. Measured in
    // Firefox, where injecting at once cost the following page load ~4.6 %
    // (bench/extension.py). The popup reads a page on demand in any case.
    const load = loads.get(tabId);
    setTimeout(async () => {
      if (loads.get(tabId) !== load
        || (typeof url === "string" && (await MeceneTabs.tabUrlNow(tabId)) !== MeceneChecks.withoutHash(url))) {
        injections.push(`${tabId}: left before ${DETECT_AFTER_MS} ms`);
        injections.splice(0, Math.max(0, injections.length - 50));
        return;
      }
      injectDetector(tabId, 0, url || null, true);
    }, DETECT_AFTER_MS);
  }
  // Only status changes matter. Firefox can say so (its extra filter argument),
  // and then does not wake the background for every title and favicon change
  // of every page; Chromium has no such argument and would refuse it.
  if (globalThis.browser && browser.runtime && browser.runtime.getBrowserInfo) {
    chrome.tabs.onUpdated.addListener(onTabUpdated, { properties: ["status"] });
  } else {
    chrome.tabs.onUpdated.addListener(onTabUpdated);
  }

  /* Pages that finished loading before this worker was listening (at install,
   * or while it was starting): inject into them now. The detector is safe to
   * inject twice. */
  async function scanTabs() {
    // No URL filter: a query by URL can come back empty while permissions
    // settle after install; scripting itself refuses pages it may not touch.
    const tabs = await chrome.tabs.query({ status: "complete" });
    for (const tab of tabs) {
      if (typeof tab.url !== "string" || /^https?:/.test(tab.url)) injectDetector(tab.id);
    }
  }
  scanTabs().catch(() => {});
  // Right after install, a page can finish loading while the worker is still
  // starting, and its "complete" event is never delivered (seen in about one
  // brand-new profile in three). So after an install, look at every tab again,
  // at once and twice more shortly after; a tab that already has its creators
  // is only asked again. Not on every start of the worker: that would inject
  // into every open tab each time it wakes.
  chrome.runtime.onInstalled.addListener(() => {
    for (const delay of [0, 1000, 4000]) setTimeout(() => scanTabs().catch(() => {}), delay);
  });

  chrome.tabs.onRemoved.addListener((tabId) => {
    loads.delete(tabId);
    MeceneStorage.dropTab(tabId);
  });

  globalThis.MeceneInjection = { actions, scanTabs };
})();
