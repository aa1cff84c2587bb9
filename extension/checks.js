/* Mécène service worker: what comes from content scripts, checked.
 *
 * Content scripts are untrusted (they run beside hostile pages): every message
 * is shape-checked here, and the page's URL is taken from `sender`, never
 * from the message. Pure but for `chrome.runtime` (who is asking) and
 * MeceneDaemon's error type.
 */
(() => {
  "use strict";
  const { MeceneDaemon } = globalThis;

  const MAX_CREATORS = 64;
  const KEY_RE = /^[a-z]+:\S{1,510}$/;
  const SCOPES = new Set(["page", "element"]);
  // content.js's `source` words; "site" is the domain entry.
  const SOURCES = new Set(["meta", "link", "anchor", "button", "data", "embed", "page-url", "site"]);
  // Sources that name the page's own creator in other words (the head's
  // metadata, the page's address, the site): never listed as "also on this page".
  const OWN_SOURCES = new Set(["meta", "link", "page-url", "site"]);

  /** One entry from a content script, cleaned, or null: a bad entry is dropped alone. */
  function checkCreator(c) {
    if (!c || typeof c !== "object") return null;
    if (typeof c.key !== "string" || c.key.length > 512 || !KEY_RE.test(c.key)) return null;
    if (!SCOPES.has(c.scope) || !SOURCES.has(c.source)) return null;
    const entry = { key: c.key, scope: c.scope, source: c.source };
    if (typeof c.label === "string" && c.label.trim()) entry.label = c.label.slice(0, 80);
    if (typeof c.url === "string" && c.url.length <= 2048) entry.url = c.url; // checked in othersOf()
    return entry;
  }

  /** The creator list from a content script: page scope first (a page's visitors
   * can add element-scope creators, never go before its own), at most 64 entries,
   * each key once; null when there is no list at all. */
  function checkCreators(args) {
    const list = args && args.creators;
    if (!Array.isArray(list)) return null;
    const clean = list.slice(0, 4 * MAX_CREATORS).map(checkCreator).filter(Boolean);
    const seen = new Set();
    const out = [];
    for (const c of [...clean.filter((e) => e.scope === "page"), ...clean.filter((e) => e.scope === "element")]) {
      if (seen.has(c.key)) continue;
      seen.add(c.key);
      out.push(c);
    }
    return out.slice(0, MAX_CREATORS);
  }

  /** The page's URL. The origin is the browser's (`sender`); the content script
   * may only say which path of that origin the page shows now, because
   * `sender.url` is the URL the document loaded with and single-page apps move
   * on with pushState. A page can pushState any path of its own origin anyway,
   * so this lends it nothing it did not have. */
  function pageUrl(sender, reported) {
    let url;
    try {
      url = new URL(sender.url || (sender.tab && sender.tab.url));
    } catch (e) {
      return null;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    if (typeof reported === "string" && reported.length <= 2048) {
      try {
        const now = new URL(reported);
        if (now.origin === url.origin) url = now;
      } catch (e) { /* keep the sender's */ }
    }
    url.hash = "";
    return url.href;
  }

  /** The thing a flattr of the page is for (content.js's thingUrl: the page's
   * same-site canonical URL, without tracking parameters); the page's own URL
   * when the report has none that is a web address. The same-site rule is the
   * content script's, which reads the page's head in its own isolated world. */
  function checkThing(reported, page) {
    if (typeof reported !== "string" || reported.length > 2048) return page;
    try {
      const url = new URL(reported);
      if (url.protocol !== "http:" && url.protocol !== "https:") return page;
      url.hash = "";
      return url.href;
    } catch (e) {
      return page;
    }
  }

  /** The thing a tab's state is about. */
  function thingOf(tab) {
    return tab.thing || tab.url;
  }

  /** The address without its fragment: what the worker compares documents by. */
  function withoutHash(raw) {
    try {
      const url = new URL(raw);
      url.hash = "";
      return url.href;
    } catch (e) {
      return null;
    }
  }

  /** The tab a popup's message is about, or null. */
  function tabIdOf(args) {
    return args && Number.isInteger(args.tabId) ? args.tabId : null;
  }

  /** Messages from the extension's own pages (the popup, the options page), not from content scripts. */
  function fromExtensionPage(sender) {
    return typeof sender.url === "string" && sender.url.startsWith(chrome.runtime.getURL(""));
  }

  /** A thrown error, as the popup reads it. */
  function failure(error) {
    const kind = error instanceof MeceneDaemon.DaemonError ? error.kind : "internal";
    const out = { kind, message: String(error.message || error) };
    // The daemon's own code for a refusal, for the popup to say it kindly.
    const code = error && error.data && typeof error.data.error === "string" ? error.data.error : null;
    if (code) out.code = code;
    return { error: out };
  }

  globalThis.MeceneChecks = {
    KEY_RE, OWN_SOURCES, checkCreators, pageUrl, checkThing, thingOf, withoutHash, tabIdOf,
    fromExtensionPage, failure,
  };
})();
