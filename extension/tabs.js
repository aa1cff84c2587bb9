/* Mécène service worker: what the worker knows of each tab, its address and
 * its badge; the detector injected into pages once they have loaded, and its
 * report (the `creators` message) turned into the tab's state.
 */
(() => {
  "use strict";
  const { MeceneStorage, MeceneChecks } = globalThis;

  async function showBadge(tabId, creators, flattred) {
    // ✓ once flattred this month; else a number when the page names creators
    // beyond its site; nothing otherwise.
    const named = (creators || []).filter((c) => c.scope === "page" && !c.key.startsWith("domain:"));
    const text = flattred ? "✓" : named.length ? String(named.length) : "";
    await chrome.action.setBadgeText({ tabId, text }).catch(() => {}); // the tab may be gone
  }

  /* The detector is injected once a page has loaded, not declared as a content
   * script: a declared one is injected before the load event and, even as a
   * single line, made pages load about 25 % slower here (bench/extension.py).
   * After "complete", it is off the page's critical path. */
  // The generated lists first (scripts/make-webdata), then the detector.
  const DETECTOR_FILES = ["github-reserved.js", "tracking-params.js", "platforms.js", "content.js"];

  /* The Public Suffix List (psl.js, 180 KB: scripts/make-psl) is read once by
   * the worker. A page is given only the rules its detector can use: those
   * of its own top-level domain, and .com's, where the platforms content.js
   * names by registrable domain live (NOT_FEDIVERSE). Any other host's
   * registrable domain then differs from the page's whatever the rules, so
   * the answers are the whole list's. Parsing the whole list in every page
   * was most of what the injection cost (bench/extension.py). */
  const ALWAYS_TLDS = ["com"];
  let suffixes = null;

  function publicSuffixes() {
    if (!suffixes) {
      suffixes = fetch(chrome.runtime.getURL("psl.js")).then((r) => r.text()).then((text) =>
        JSON.parse(text.slice(text.indexOf("= {") + 2, text.lastIndexOf("}") + 1)));
      suffixes.catch(() => { suffixes = null; }); // tried again at the next injection
    }
    return suffixes;
  }

  /** The PSL groups a page at `url` needs: its host's top-level domain's, and
   * those of host names its path begins with (a cached copy's address names
   * its original's host there: /c/s/www.example.co.uk/…). */
  async function suffixGroupsFor(url) {
    const list = await publicSuffixes();
    const hosts = [];
    try {
      const parsed = new URL(url);
      hosts.push(parsed.hostname);
      for (const part of parsed.pathname.split("/").slice(1, 4)) {
        if (/^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$/.test(part)) hosts.push(part.toLowerCase());
      }
    } catch (e) { /* not a URL: .com's groups only */ }
    const groups = {};
    for (const tld of [...hosts.map((h) => h.slice(h.lastIndexOf(".") + 1)), ...ALWAYS_TLDS]) {
      if (Object.prototype.hasOwnProperty.call(list, tld)) groups[tld] = list[tld];
    }
    return groups;
  }

  /** The last injection attempts, for diagnosis (tests print it when detection fails). */
  const injections = [];

  /** In the page (`self` is its window): the rules, then, after a load,
   * wait until the load event is over (at most 3 s): Firefox says a tab is
   * "complete" before its load event has run, and a detector parsed then
   * made the load itself slower. */
  function givenRules(given, afterLoad) {
    self.MECENE_PSL = given;
    const nav = self.performance.getEntriesByType("navigation")[0];
    if (!afterLoad || !nav || nav.loadEventEnd > 0) return true;
    return new Promise((resolve) => {
      const done = () => setTimeout(() => resolve(true), 0);
      self.addEventListener("load", done, { once: true });
      setTimeout(done, 3000);
    });
  }

  /** `afterLoad`: injected for a tab that has just loaded (not on demand). */
  async function injectDetector(tabId, attempt = 0, url = null, afterLoad = false) {
    try {
      const groups = await suffixGroupsFor(url || (await chrome.tabs.get(tabId)).url);
      // The rules first, then the detector, which reports nothing without them.
      await chrome.scripting.executeScript({
        target: { tabId }, func: givenRules, args: [groups, afterLoad],
      });
      await chrome.scripting.executeScript({ target: { tabId }, files: DETECTOR_FILES });
      injections.push(`${tabId}: injected (attempt ${attempt})`);
    } catch (e) {
      const why = String((e && e.message) || e);
      injections.push(`${tabId}: ${why} (attempt ${attempt})`);
      // Not a web page, or the tab is gone: nothing to retry. Otherwise (right
      // after install, permissions may still be settling) try again shortly.
      if (attempt < 4 && !/No tab with id|Cannot access|chrome:|extensions gallery/.test(why)) {
        setTimeout(() => injectDetector(tabId, attempt + 1, url, afterLoad), 400 * (attempt + 1));
      }
    }
    injections.splice(0, Math.max(0, injections.length - 50));
  }

  /** The tab's address now, without fragment; null when it is not a web page. */
  async function tabUrlNow(tabId) {
    let tab;
    try {
      tab = await chrome.tabs.get(tabId);
    } catch (e) {
      return null; // closed
    }
    const url = tab && typeof tab.url === "string" ? MeceneChecks.withoutHash(tab.url) : null;
    return url && /^https?:/.test(url) ? url : null;
  }

  /** The state of the document the tab shows now: the stored one when its URL is
   * the tab's URL now; else the detector is asked again, on demand (a page that
   * never finished loading, one restored from the back/forward cache, a state
   * that outlived its document) and its fresh report awaited. */
  async function tabStateNow(tabId) {
    const [url, known] = await Promise.all([tabUrlNow(tabId), MeceneStorage.getTab(tabId)]);
    if (!url) return null;
    if (known && known.url === url) return known;
    if (known) await MeceneStorage.dropTab(tabId);
    await injectDetector(tabId);
    for (let i = 0; i < 30; i++) {
      const state = await MeceneStorage.getTab(tabId);
      if (state && state.url === url) return state;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return null;
  }

  /** One flattr at a time per tab: a pairing that completes while the popup
   * also asks must not flattr twice. */
  const tabLocks = new Map();
  /** `job(after)` runs once the tab's previous job is over; its answer is
   * given as soon as it returns, and work it hands to `after(promise)` (the
   * tab's stored state) still holds the tab until it is done. */
  function oneAtATime(tabId, job) {
    const before = tabLocks.get(tabId) || Promise.resolve();
    const later = [];
    const answer = before.catch(() => {}).then(() => job((work) => later.push(work)));
    const run = answer.catch(() => {}).then(() => Promise.allSettled(later));
    tabLocks.set(tabId, run);
    run.finally(() => { if (tabLocks.get(tabId) === run) tabLocks.delete(tabId); }).catch(() => {});
    return answer;
  }

  /** The content script found the page's creators (background.js routes it). */
  const pageActions = {
    /** The content script found the page's creators. Top frame, active document only. */
    async creators(args, sender) {
      if (!sender.tab || sender.frameId !== 0) return null;
      // A prerendered or cached document is not what the tab shows (Chromium says which).
      if (sender.documentLifecycle && sender.documentLifecycle !== "active") return null;
      const url = MeceneChecks.pageUrl(sender, args && args.url);
      const creators = MeceneChecks.checkCreators(args);
      if (!url || !creators) return null;
      const title = typeof args.title === "string" ? args.title.slice(0, 200) : "";
      const state = { url, thing: MeceneChecks.checkThing(args.thing, url), creators, at: Date.now() };
      if (title) state.title = title;
      // The same page again (its head changed): what was flattred on it stays.
      const before = await MeceneStorage.getTab(sender.tab.id);
      if (before && before.url === url) {
        for (const kept of ["flattr", "status", "others"]) {
          if (before[kept] !== undefined) state[kept] = before[kept];
        }
      }
      await MeceneStorage.setTab(sender.tab.id, state);
      await showBadge(sender.tab.id, creators,
        Boolean(state.flattr && !state.flattr.undone && !state.flattr.queued));
      return null;
    },
  };

  const SITE_ORIGINS = ["http://*/*", "https://*/*"];

  /** Whether the extension may read web pages (Firefox lets a person withhold it). */
  async function siteAccess() {
    try {
      return await chrome.permissions.contains({ origins: SITE_ORIGINS });
    } catch (e) {
      return true; // a browser without the API decides by itself
    }
  }

  globalThis.MeceneTabs = {
    siteAccess,
    showBadge, DETECTOR_FILES, suffixGroupsFor, injections, injectDetector, tabUrlNow, tabStateNow,
    oneAtATime,
    pageActions,
  };
})();
