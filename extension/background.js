/* Mécène service worker: routes messages through one table of handlers.
 *
 * Content scripts are untrusted (they run beside hostile pages): every message
 * is shape-checked, and the page's URL is taken from `sender`, never from the
 * message. State lives in chrome.storage.session (storage.js).
 */
"use strict";
if (typeof importScripts === "function" && !globalThis.MeceneStorage) {
  importScripts("storage.js"); // Chromium's service worker; Firefox loads it from the manifest
}

const MAX_CREATORS = 64;
const KEY_RE = /^[a-z]+:\S{1,510}$/;
const SCOPES = new Set(["page", "element"]);

/** The creator list from a content script, cleaned, or null if malformed. */
function checkCreators(args) {
  const list = args && args.creators;
  if (!Array.isArray(list) || list.length > MAX_CREATORS) return null;
  const out = [];
  for (const c of list) {
    if (!c || typeof c !== "object") return null;
    if (typeof c.key !== "string" || c.key.length > 512 || !KEY_RE.test(c.key)) return null;
    if (!SCOPES.has(c.scope) || typeof c.source !== "string" || c.source.length > 64) return null;
    const entry = { key: c.key, scope: c.scope, source: c.source };
    if (typeof c.label === "string") entry.label = c.label.slice(0, 80);
    out.push(entry);
  }
  return out;
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

async function showBadge(tabId, creators) {
  // A number when the page names creators beyond its site; nothing otherwise.
  const named = creators.filter((c) => c.scope === "page" && !c.key.startsWith("domain:"));
  await chrome.action.setBadgeText({ tabId, text: named.length ? String(named.length) : "" });
}

const handlers = {
  /** The content script found the page's creators. Top frame only. */
  async creators(args, sender) {
    if (!sender.tab || sender.frameId !== 0) return null;
    const url = pageUrl(sender, args && args.url);
    const creators = checkCreators(args);
    if (!url || !creators) return null;
    await MeceneStorage.setTab(sender.tab.id, { url, creators, at: Date.now() });
    await showBadge(sender.tab.id, creators);
    return null;
  },
};

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  if (sender.id !== chrome.runtime.id) return false;
  if (!message || typeof message !== "object" || typeof message.action !== "string") return false;
  if (!Object.prototype.hasOwnProperty.call(handlers, message.action)) return false;
  handlers[message.action](message.args, sender).then(
    (result) => sendResponse(result),
    (error) => sendResponse({ error: String(error) }),
  );
  return true; // the answer comes asynchronously
});

chrome.tabs.onRemoved.addListener((tabId) => {
  MeceneStorage.dropTab(tabId);
});
