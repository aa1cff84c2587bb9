/* Mécène service worker: routes messages through one table of handlers.
 *
 * Content scripts are untrusted (they run beside hostile pages): every message
 * is shape-checked, and the page's URL is taken from `sender`, never from the
 * message. State lives in chrome.storage.session (storage.js).
 */
"use strict";
if (typeof importScripts === "function" && !globalThis.MeceneStorage) {
  // Chromium's service worker; Firefox loads them from the manifest.
  importScripts("storage.js", "daemon.js");
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
    if (c.url !== undefined) {
      if (typeof c.url !== "string" || c.url.length > 2048) return null;
      entry.url = c.url; // checked against the page's origin in partUrls()
    }
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

async function showBadge(tabId, creators, flattred) {
  // ✓ once flattred this month; else a number when the page names creators
  // beyond its site; nothing otherwise.
  const named = creators.filter((c) => c.scope === "page" && !c.key.startsWith("domain:"));
  const text = flattred ? "✓" : named.length ? String(named.length) : "";
  await chrome.action.setBadgeText({ tabId, text });
}

/** Messages from the extension's own pages (the popup), not from content scripts. */
function fromExtensionPage(sender) {
  return typeof sender.url === "string" && sender.url.startsWith(chrome.runtime.getURL(""));
}

function failure(error) {
  const kind = error instanceof MeceneDaemon.DaemonError ? error.kind : "internal";
  return { error: { kind, message: String(error.message || error) } };
}

function clientName() {
  const brands = (navigator.userAgentData && navigator.userAgentData.brands) || [];
  const brand = brands.map((b) => b.brand).find((b) => !/Not.A.Brand/i.test(b)) || "Browser";
  return `Mécène in ${brand}`.slice(0, 80);
}

const OUTBOX_ALARM = "outbox";

/** Send one stored flattr. True when the daemon has answered for good (2xx or
 * a refusal), false when it is unreachable and the flattr must wait. */
async function deliver(body, token) {
  try {
    const { data } = await MeceneDaemon.call("POST", "/clicks", body, token);
    return { done: true, data };
  } catch (e) {
    if (e.kind === "down" || e.kind === "locked") return { done: false, error: e };
    if (e.kind === "unauthorized") await MeceneStorage.setToken(null);
    return { done: e.kind !== "unauthorized", error: e };
  }
}

/** Deliver every waiting flattr; the alarm calls this until the outbox is empty.
 * Each keeps its client id, so a flattr the daemon already has comes back as
 * the same click (200) and is never counted twice. */
async function deliverOutbox() {
  const token = await MeceneStorage.getToken();
  const outbox = await MeceneStorage.getOutbox();
  if (!token) return Object.keys(outbox).length;
  for (const [id, entry] of Object.entries(outbox)) {
    const result = await deliver(entry.body, token);
    if (!result.done) break; // still down: try again at the next alarm
    await MeceneStorage.dropOutbox(id);
  }
  const left = Object.keys(await MeceneStorage.getOutbox()).length;
  if (left === 0) await chrome.alarms.clear(OUTBOX_ALARM);
  return left;
}

chrome.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === OUTBOX_ALARM) deliverOutbox();
});

/** The page's other creators (co-authors, commenters; not the site fallback
 * nor the head's other names for the page's own creator),
 * each with the thing a flattr of them is for: their own part of the page when
 * the page gives it an address of its own origin, else the page's URL with a
 * fragment naming them. A flattr of a commenter is thus never a second flattr
 * of the page (one flattr per thing per month), and each part is flattred once. */
function othersOf(tab) {
  const page = new URL(tab.url);
  const used = new Set([tab.url]);
  const out = [];
  for (const c of tab.creators.slice(1)) {
    if (c.key.startsWith("domain:")) continue;
    // The head's metadata (a monetization link, a fediverse:creator tag…)
    // names the page's own creator in other words: not another creator.
    if (c.scope === "page" && !/^(a |FlattrButton|data-flattr-uid)/.test(c.source)) continue;
    let url = null;
    try {
      const part = c.url ? new URL(c.url) : null;
      if (part && part.origin === page.origin && /^https?:$/.test(part.protocol)) url = part.href;
    } catch (e) { /* a bad address: use the fallback */ }
    if (!url || used.has(url)) url = `${tab.url}#creator=${encodeURIComponent(c.key)}`;
    used.add(url);
    out.push({ key: c.key, label: c.label, scope: c.scope, url });
  }
  return out.slice(0, 16);
}

/** Send a new flattr, kept in the outbox first. The answer: {click, status} when
 * the daemon took it (or already had this thing: 409 flattr_once gives its
 * click), {queued, reason} when it must wait; throws when it was refused. */
async function sendFlattr(tabId, body, token) {
  await MeceneStorage.putOutbox(body.id, { body, tabId, at: Date.now() });
  const sent = await deliver(body, token);
  if (!sent.done && sent.error.kind === "unauthorized") {
    // Revoked: the popup pairs again and flattrs afresh; this one is dropped.
    await MeceneStorage.dropOutbox(body.id);
    throw sent.error;
  }
  if (!sent.done) {
    await chrome.alarms.create(OUTBOX_ALARM, { delayInMinutes: 0.5, periodInMinutes: 0.5 });
    return { queued: true, reason: sent.error.kind };
  }
  await MeceneStorage.dropOutbox(body.id);
  if (sent.data) return { click: sent.data.click, status: sent.data.status };
  const data = sent.error.data;
  if (data && data.error === "flattr_once" && data.click) return { click: data.click, status: null };
  throw sent.error;
}

/** Actions the popup asks for; each returns a plain object (or {error}). */
const popupHandlers = {
  async pair() {
    const { data } = await MeceneDaemon.call("POST", "/pairing", { client: clientName() });
    await MeceneStorage.setPairing({ id: data.pairing_id, code: data.code });
    return { code: data.code };
  },

  async pairingStatus() {
    const pairing = await MeceneStorage.getPairing();
    if (!pairing) return { status: "none" };
    let data;
    try {
      ({ data } = await MeceneDaemon.call("GET", `/pairing/${encodeURIComponent(pairing.id)}`));
    } catch (e) {
      if (e.kind === "refused") { // 404: expired and forgotten by the daemon
        await MeceneStorage.setPairing(null);
        return { status: "expired" };
      }
      throw e;
    }
    if (data.status === "approved" && typeof data.token === "string") {
      await MeceneStorage.setToken(data.token);
      await MeceneStorage.setPairing(null);
    } else if (data.status !== "pending") {
      await MeceneStorage.setPairing(null);
    }
    return { status: data.status, code: pairing.code };
  },

  /** Flattr the tab's primary creator (the toolbar click). */
  async flattr(args) {
    const tabId = args && args.tabId;
    if (!Number.isInteger(tabId)) return { error: { kind: "invalid", message: "no tab" } };
    const tab = await tabStateNow(tabId);
    if (!tab || !tab.creators.length) {
      return { error: { kind: "nothing", message: "Nothing to flattr on this page." } };
    }
    const token = await MeceneStorage.getToken();
    if (!token) return { error: { kind: "unpaired", message: "This browser is not paired yet." } };
    if (tab.flattr && tab.flattr.url === tab.url && !tab.flattr.undone) {
      return { click: tab.flattr, status: tab.status || null, creators: tab.creators };
    }
    const weight = Number.isInteger(args.weight) && args.weight >= 1 && args.weight <= 5
      ? args.weight : 1;
    const body = {
      id: crypto.randomUUID(), url: tab.url, creator: tab.creators[0].key,
      creators: tab.creators.slice(1).map((c) => c.key).slice(0, 32), weight,
    };
    if (tab.title) body.title = tab.title;
    // Kept before sending: if the daemon is down, it is delivered later, once.
    const sent = await sendFlattr(tabId, body, token);
    if (sent.queued) {
      const queued = { ...body, queued: true };
      await MeceneStorage.setTab(tabId, { ...tab, flattr: queued, status: null });
      return { queued: true, click: queued, creators: tab.creators, reason: sent.reason };
    }
    const { click, status } = sent; // a 409 flattr_once: already flattred, shown with Undo
    await MeceneStorage.setTab(tabId, { ...tab, flattr: click, status });
    await showBadge(tabId, tab.creators, !click.undone);
    return { click, status, creators: tab.creators };
  },

  /** The page's other creators and what this browser did for each. */
  async others(args) {
    const tabId = args && args.tabId;
    const tab = Number.isInteger(tabId) ? await MeceneStorage.getTab(tabId) : null;
    if (!tab) return { others: [] };
    const done = tab.others || {};
    return {
      others: othersOf(tab).map((o) => ({ ...o, click: done[o.key] || null })),
    };
  },

  /** Flattr one of the page's other creators, for their own part of the page. */
  async flattrOther(args) {
    const tabId = args && args.tabId;
    const key = args && args.key;
    const tab = Number.isInteger(tabId) ? await MeceneStorage.getTab(tabId) : null;
    const other = tab && typeof key === "string" ? othersOf(tab).find((o) => o.key === key) : null;
    if (!other) return { error: { kind: "invalid", message: "not a creator of this page" } };
    const token = await MeceneStorage.getToken();
    if (!token) return { error: { kind: "unpaired", message: "This browser is not paired yet." } };
    const known = (tab.others || {})[key];
    if (known && !known.undone) return { click: known };
    const body = { id: crypto.randomUUID(), url: other.url, creator: other.key, weight: 1 };
    const sent = await sendFlattr(tabId, body, token);
    const click = sent.queued ? { ...body, queued: true } : sent.click;
    const fresh = (await MeceneStorage.getTab(tabId)) || tab;
    await MeceneStorage.setTab(tabId, { ...fresh, others: { ...(fresh.others || {}), [key]: click } });
    return sent.queued ? { queued: true, click, reason: sent.reason } : { click, status: sent.status };
  },

  /** A weight chosen after the flattr: the API has no update, so undo and flattr again. */
  async reweight(args) {
    const tabId = args && args.tabId;
    const weight = args && args.weight;
    if (!Number.isInteger(weight) || weight < 1 || weight > 5) {
      return { error: { kind: "invalid", message: "a weight is 1 to 5" } };
    }
    const tab = Number.isInteger(tabId) ? await MeceneStorage.getTab(tabId) : null;
    if (tab && tab.flattr && !tab.flattr.undone && !tab.flattr.queued) {
      if (tab.flattr.weight === weight) return { click: tab.flattr, status: tab.status, creators: tab.creators };
      await popupHandlers.undo({ tabId });
    }
    return popupHandlers.flattr({ tabId, weight });
  },

  /** Subscribe to the page's primary creator and thing for 3, 6 or 12 months. */
  async subscribe(args) {
    const tabId = args && args.tabId;
    const months = args && args.months;
    if (![3, 6, 12].includes(months)) return { error: { kind: "invalid", message: "3, 6 or 12" } };
    const tab = Number.isInteger(tabId) ? await MeceneStorage.getTab(tabId) : null;
    if (!tab || !tab.creators.length) return { error: { kind: "nothing", message: "nothing" } };
    const token = await MeceneStorage.getToken();
    const { data } = await MeceneDaemon.call("POST", "/subscriptions", {
      id: crypto.randomUUID(), creator: tab.creators[0].key, url: tab.url, months,
    }, token);
    return data;
  },

  async undo(args) {
    const tabId = args && args.tabId;
    const tab = Number.isInteger(tabId) ? await MeceneStorage.getTab(tabId) : null;
    if (!tab || !tab.flattr) return { error: { kind: "invalid", message: "nothing to undo" } };
    const token = await MeceneStorage.getToken();
    const { data } = await MeceneDaemon.call(
      "DELETE", `/clicks/${encodeURIComponent(tab.flattr.id)}`, undefined, token);
    await MeceneStorage.setTab(tabId, { ...tab, flattr: data.click, status: data.status });
    await showBadge(tabId, tab.creators, !data.click.undone);
    return data;
  },
};

const handlers = {
  /** The content script found the page's creators. Top frame only. */
  async creators(args, sender) {
    if (!sender.tab || sender.frameId !== 0) return null;
    const url = pageUrl(sender, args && args.url);
    const creators = checkCreators(args);
    if (!url || !creators) return null;
    const title = typeof args.title === "string" ? args.title.slice(0, 200) : "";
    const state = { url, creators, at: Date.now() };
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

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  if (sender.id !== chrome.runtime.id) return false;
  if (!message || typeof message !== "object" || typeof message.action !== "string") return false;
  const own = Object.prototype.hasOwnProperty;
  // The popup's actions spend money: only the extension's own pages may ask.
  const table = fromExtensionPage(sender) ? popupHandlers : handlers;
  if (!own.call(table, message.action)) return false;
  table[message.action](message.args, sender).then(
    (result) => sendResponse(result),
    (error) => sendResponse(failure(error)),
  );
  return true; // the answer comes asynchronously
});

/* The detector is injected once a page has loaded, not declared as a content
 * script: a declared one is injected before the load event and, even as a
 * single line, made pages load about 25 % slower here (bench/extension.py).
 * After "complete", it is off the page's critical path. */
const DETECTOR_FILES = ["psl.js", "content.js"];

/** The last injection attempts, for diagnosis (tests print it when detection fails). */
const injections = [];

async function injectDetector(tabId, attempt = 0) {
  try {
    await chrome.scripting.executeScript({ target: { tabId }, files: DETECTOR_FILES });
    injections.push(`${tabId}: injected (attempt ${attempt})`);
  } catch (e) {
    const why = String((e && e.message) || e);
    injections.push(`${tabId}: ${why} (attempt ${attempt})`);
    // Not a web page, or the tab is gone: nothing to retry. Otherwise (right
    // after install, permissions may still be settling) try again shortly.
    if (attempt < 4 && !/No tab with id|Cannot access|chrome:|extensions gallery/.test(why)) {
      setTimeout(() => injectDetector(tabId, attempt + 1), 400 * (attempt + 1));
    }
  }
  injections.splice(0, Math.max(0, injections.length - 50));
}

chrome.tabs.onUpdated.addListener((tabId, change, tab) => {
  if (change.status !== "complete") return;
  injections.push(`${tabId}: complete ${tab && tab.url ? "with url" : "without url"}`);
  // The URL can be missing (permissions still settling right after install):
  // try anyway, scripting refuses pages it may not touch.
  const url = tab && tab.url;
  if (typeof url !== "string" || /^https?:/.test(url)) injectDetector(tabId);
});

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
// is only asked again (the detector reports nothing new). Not on every start
// of the worker: that would inject into every open tab each time it wakes.
chrome.runtime.onInstalled.addListener(() => {
  for (const delay of [0, 1000, 4000]) setTimeout(() => scanTabs().catch(() => {}), delay);
});

/** The tab's state, injecting the detector and waiting briefly if it has none yet. */
async function tabStateNow(tabId) {
  const known = await MeceneStorage.getTab(tabId);
  if (known) return known;
  await injectDetector(tabId);
  for (let i = 0; i < 30; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const state = await MeceneStorage.getTab(tabId);
    if (state) return state;
  }
  return null;
}

chrome.tabs.onRemoved.addListener((tabId) => {
  MeceneStorage.dropTab(tabId);
});
