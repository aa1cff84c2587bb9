/* Mécène service worker: routes messages through one table of handlers.
 *
 * Content scripts are untrusted (they run beside hostile pages): every message
 * is shape-checked, and the page's URL is taken from `sender`, never from the
 * message. State lives in chrome.storage.session (storage.js).
 */
"use strict";
if (typeof importScripts === "function" && !globalThis.MeceneStorage) {
  // Chromium's service worker; Firefox loads them from the manifest.
  importScripts("storage.js", "daemon.js", "pairing.js");
}

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

async function showBadge(tabId, creators, flattred) {
  // ✓ once flattred this month; else a number when the page names creators
  // beyond its site; nothing otherwise.
  const named = (creators || []).filter((c) => c.scope === "page" && !c.key.startsWith("domain:"));
  const text = flattred ? "✓" : named.length ? String(named.length) : "";
  await chrome.action.setBadgeText({ tabId, text }).catch(() => {}); // the tab may be gone
}

/** Messages from the extension's own pages (the popup, the options page), not from content scripts. */
function fromExtensionPage(sender) {
  return typeof sender.url === "string" && sender.url.startsWith(chrome.runtime.getURL(""));
}

function failure(error) {
  const kind = error instanceof MeceneDaemon.DaemonError ? error.kind : "internal";
  return { error: { kind, message: String(error.message || error) } };
}

const PLATFORMS = {
  linux: "Linux", mac: "macOS", win: "Windows", cros: "ChromeOS", android: "Android",
  openbsd: "OpenBSD", fuchsia: "Fuchsia",
};

/** "Chromium on Linux", "Firefox on Windows": how the browser is listed in
 * `mecene pair list` and the dashboard. */
async function clientName() {
  let brand = "";
  if (typeof browser !== "undefined" && browser.runtime && browser.runtime.getBrowserInfo) {
    brand = (await browser.runtime.getBrowserInfo()).name; // Firefox
  } else {
    const brands = (navigator.userAgentData && navigator.userAgentData.brands) || [];
    // Chrome lists "Chromium" beside its own name: prefer the more specific one.
    const named = brands.map((b) => b.brand).filter((b) => !/Not.?A.?Brand/i.test(b));
    brand = named.find((b) => b !== "Chromium") || named[0] || "";
  }
  let os = "";
  try {
    os = PLATFORMS[(await chrome.runtime.getPlatformInfo()).os] || "";
  } catch (e) { /* unknown platform: the browser's name alone */ }
  const name = brand || "Browser";
  return (os ? `${name} on ${os}` : name).slice(0, 80);
}

// -- the outbox: flattrs kept until the daemon has them --------------------------------

const OUTBOX_ALARM = "outbox";

/** Send one stored flattr. {done, data?, error?}: done when the daemon has
 * answered for good (2xx or a refusal), not when it is unreachable or locked. */
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
    if (result.data) await markDelivered(entry, result.data.click);
  }
  const left = Object.keys(await MeceneStorage.getOutbox()).length;
  if (left === 0) await chrome.alarms.clear(OUTBOX_ALARM);
  return left;
}

/** A queued flattr reached the daemon: the tab that still shows its page learns it. */
async function markDelivered(entry, click) {
  if (!Number.isInteger(entry.tabId) || !click) return;
  const tab = await MeceneStorage.getTab(entry.tabId);
  if (!tab) return;
  if (tab.flattr && tab.flattr.id === click.id) {
    await MeceneStorage.setTab(entry.tabId, { ...tab, flattr: click });
    await showBadge(entry.tabId, tab.creators, !click.undone);
  } else if (tab.others) {
    const key = Object.keys(tab.others).find((k) => tab.others[k].id === click.id);
    if (key) await MeceneStorage.setTab(entry.tabId, { ...tab, others: { ...tab.others, [key]: click } });
  }
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

// -- pairing, owned by the worker (pairing.js is the policy) ----------------------------

const PAIRING_ALARM = "pairing";
let pairingLoop = null;

/** Feed one event to the pairing policy and carry out what it says. */
async function pairingEvent(event) {
  const before = await MeceneStorage.getPairing();
  const { state, actions } = MecenePairing.next(before, event, Date.now());
  await MeceneStorage.setPairing(state);
  for (const action of actions) {
    if (action.do === "request") {
      const { data } = await MeceneDaemon.call("POST", "/pairing", { client: await clientName() });
      await pairingEvent({
        type: "created", id: data.pairing_id, code: data.code, expiresIn: data.expires_in,
        tabId: event.tabId, url: event.url,
      });
    } else if (action.do === "poll") {
      pollPairingSoon();
    } else if (action.do === "wake") {
      if (action.on) await chrome.alarms.create(PAIRING_ALARM, { periodInMinutes: 0.5 });
      else await chrome.alarms.clear(PAIRING_ALARM);
    } else if (action.do === "token") {
      await MeceneStorage.setToken(action.token);
      await deliverOutbox();
    } else if (action.do === "ended") {
      await MeceneStorage.setPairingEnd({ status: action.status, at: Date.now() });
    } else if (action.do === "flattr") {
      // The flattr the person asked for, if that tab still shows that page.
      flattrTab(action.tabId, { expectUrl: action.url }).catch(() => {});
    }
  }
}

async function pollPairing() {
  const pairing = await MeceneStorage.getPairing();
  if (!pairing) return;
  try {
    const { data } = await MeceneDaemon.call("GET", `/pairing/${encodeURIComponent(pairing.id)}`);
    await pairingEvent({ type: "answer", status: data.status, token: data.token });
  } catch (e) {
    if (e.kind === "refused") await pairingEvent({ type: "gone" }); // 404: forgotten
    // down: the daemon restarts or is stopped; the next tick asks again
  }
}

/** Ask every second while the worker lives; the alarm wakes a stopped worker. */
function pollPairingSoon() {
  if (pairingLoop) return;
  pairingLoop = setTimeout(async () => {
    pairingLoop = null;
    await pollPairing();
    if (await MeceneStorage.getPairing()) await pairingEvent({ type: "tick" });
  }, 1000);
}

chrome.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === OUTBOX_ALARM) deliverOutbox();
  if (alarm.name === PAIRING_ALARM) pairingEvent({ type: "tick" });
});

// -- the page's creators and flattrs -----------------------------------------------------

/** The page's other creators (co-authors, commenters; not the site fallback
 * nor the head's other names for the page's own creator),
 * each with the thing a flattr of them is for: their own part of the page when
 * the page gives it an address of its own origin, else the page's URL with a
 * fragment naming them. A flattr of a commenter is thus never a second flattr
 * of the page (one flattr per thing per month), and each part is flattred once. */
function othersOf(tab) {
  const thing = thingOf(tab);
  const origins = new Set([new URL(tab.url).origin, new URL(thing).origin]);
  const used = new Set([thing]);
  const out = [];
  for (const c of tab.creators.slice(1)) {
    if (c.key.startsWith("domain:") || (c.scope === "page" && OWN_SOURCES.has(c.source))) continue;
    let url = null;
    try {
      const part = c.url ? new URL(c.url) : null;
      if (part && origins.has(part.origin) && /^https?:$/.test(part.protocol)) url = part.href;
    } catch (e) { /* a bad address: use the fallback */ }
    if (!url || used.has(url)) url = `${thing}#creator=${encodeURIComponent(c.key)}`;
    used.add(url);
    out.push({ key: c.key, label: c.label, scope: c.scope, url });
  }
  return out.slice(0, 16);
}

/** A gift the popup asks for: one of the tab's creators (the primary one, for
 * the thing itself, or another, for their part of the page), whole cents. */
async function giftOf(args) {
  const tabId = tabIdOf(args);
  const key = args && args.key;
  const cents = args && args.cents;
  if (!Number.isSafeInteger(cents) || cents < 1) {
    return { error: { kind: "invalid", message: "An amount is whole cents." } };
  }
  const tab = tabId === null ? null : await tabStateNow(tabId);
  if (!tab || !tab.creators.length || typeof key !== "string") {
    return { error: { kind: "invalid", message: "not a creator of this page" } };
  }
  const token = await MeceneStorage.getToken();
  if (!token) return { error: { kind: "unpaired", message: "This browser is not paired yet." } };
  if (tab.creators[0].key === key) {
    return { key, cents, url: thingOf(tab), title: tab.title, token };
  }
  const other = othersOf(tab).find((o) => o.key === key);
  if (!other) return { error: { kind: "invalid", message: "not a creator of this page" } };
  return { key, cents, url: other.url, title: tab.title, token };
}

/** The tab's address now, without fragment; null when it is not a web page. */
async function tabUrlNow(tabId) {
  let tab;
  try {
    tab = await chrome.tabs.get(tabId);
  } catch (e) {
    return null; // closed
  }
  const url = tab && typeof tab.url === "string" ? withoutHash(tab.url) : null;
  return url && /^https?:/.test(url) ? url : null;
}

/** The state of the document the tab shows now: the stored one when its URL is
 * the tab's URL now; else the detector is asked again, on demand (a page that
 * never finished loading, one restored from the back/forward cache, a state
 * that outlived its document) and its fresh report awaited. */
async function tabStateNow(tabId) {
  const url = await tabUrlNow(tabId);
  if (!url) return null;
  const known = await MeceneStorage.getTab(tabId);
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
function oneAtATime(tabId, job) {
  const before = tabLocks.get(tabId) || Promise.resolve();
  const run = before.catch(() => {}).then(job);
  tabLocks.set(tabId, run);
  run.finally(() => { if (tabLocks.get(tabId) === run) tabLocks.delete(tabId); }).catch(() => {});
  return run;
}

/** The month's figures now, for a popup that shows a flattr made earlier. */
async function freshStatus(token) {
  try {
    return (await MeceneDaemon.call("GET", "/status", undefined, token)).data;
  } catch (e) {
    return null;
  }
}

/** Flattr the primary creator of the document the tab shows now. */
function flattrTab(tabId, { weight = 1, expectUrl = null } = {}) {
  return oneAtATime(tabId, async () => {
    const tab = await tabStateNow(tabId);
    if (!tab || !tab.creators.length) {
      return { error: { kind: "nothing", message: "Nothing to flattr on this page." } };
    }
    if (expectUrl && tab.url !== expectUrl) {
      return { error: { kind: "moved", message: "The tab shows another page now." } };
    }
    const token = await MeceneStorage.getToken();
    if (!token) return { error: { kind: "unpaired", message: "This browser is not paired yet." } };
    const known = tab.flattr && tab.flattr.url === thingOf(tab) && !tab.flattr.undone ? tab.flattr : null;
    if (known && !known.queued) {
      return { click: known, status: await freshStatus(token), creators: tab.creators, url: tab.url };
    }
    // A flattr still in the outbox is sent again with its own id (never a second one).
    const body = known ? known.body : {
      id: crypto.randomUUID(), url: thingOf(tab), creator: tab.creators[0].key,
      creators: tab.creators.slice(1).map((c) => c.key).slice(0, 32), weight,
    };
    if (!known && tab.title) body.title = tab.title;
    // Kept before sending: if the daemon is down, it is delivered later, once.
    const sent = await sendFlattr(tabId, body, token);
    if (sent.queued) {
      const queued = { id: body.id, creator: body.creator, url: body.url, weight: body.weight, queued: true, body };
      await MeceneStorage.setTab(tabId, { ...tab, flattr: queued, status: null });
      return { queued: true, click: queued, creators: tab.creators, reason: sent.reason, url: tab.url };
    }
    const { click } = sent; // a 409 flattr_once: already flattred, shown with Undo
    const status = sent.status || await freshStatus(token);
    await MeceneStorage.setTab(tabId, { ...tab, flattr: click, status });
    await showBadge(tabId, tab.creators, !click.undone);
    return { click, status, creators: tab.creators, url: tab.url };
  });
}

function tabIdOf(args) {
  return args && Number.isInteger(args.tabId) ? args.tabId : null;
}

/** Actions the extension's own pages ask for; each returns a plain object (or {error}). */
/* Reading pages needs the host permissions. Chromium grants them at install;
 * Firefox lets the person withhold them (about:addons, Permissions). Without
 * them no page can be read, so the popup asks for them, saying why. */
const SITE_ORIGINS = ["http://*/*", "https://*/*"];

async function siteAccess() {
  try {
    return await chrome.permissions.contains({ origins: SITE_ORIGINS });
  } catch (e) {
    return true; // a browser without the API decides by itself
  }
}

/** Access just granted: read the open pages, and flattr the page whose popup
 * asked for it, if its tab still shows it (as a pairing does). */
chrome.permissions.onAdded.addListener(async () => {
  if (!(await siteAccess())) return;
  await scanTabs().catch(() => {});
  const wanted = await MeceneStorage.takeAccessWanted();
  if (!wanted || (await tabUrlNow(wanted.tabId)) !== wanted.url) return;
  if (await MeceneStorage.getToken()) await flattrTab(wanted.tabId, { expectUrl: wanted.url });
});

const popupHandlers = {
  /** Whether the extension may read web pages. */
  async access() {
    return { granted: await siteAccess() };
  },

  /** The popup is about to ask for access: remember which page asked. */
  async accessWanted(args) {
    const tabId = tabIdOf(args);
    const url = tabId === null ? null : await tabUrlNow(tabId);
    if (url) await MeceneStorage.setAccessWanted({ tabId, url });
    return null;
  },

  /** Start pairing, or show the pairing already waiting (the same code). The
   * worker keeps asking the daemon after the popup closes. */
  async pair(args) {
    const tabId = tabIdOf(args);
    const url = tabId === null ? null : await tabUrlNow(tabId);
    await MeceneStorage.setPairingEnd(null);
    await pairingEvent({ type: "start", tabId: url ? tabId : undefined, url: url || undefined });
    return popupHandlers.pairingStatus();
  },

  /** {status: "pending", code, expiresAt} while it waits; then how it ended. */
  async pairingStatus() {
    const pairing = await MeceneStorage.getPairing();
    if (pairing && Date.now() < pairing.expiresAt) {
      pollPairingSoon();
      return { status: "pending", code: pairing.code, expiresAt: pairing.expiresAt };
    }
    const end = await MeceneStorage.getPairingEnd();
    return { status: end ? end.status : "none" };
  },

  /** Flattr the tab's primary creator (the toolbar click). */
  async flattr(args) {
    const tabId = tabIdOf(args);
    if (tabId === null) return { error: { kind: "invalid", message: "no tab" } };
    const weight = Number.isInteger(args.weight) && args.weight >= 1 && args.weight <= 5
      ? args.weight : 1;
    return flattrTab(tabId, { weight });
  },

  /** The page's other creators and what this browser did for each. */
  async others(args) {
    const tabId = tabIdOf(args);
    const tab = tabId === null ? null : await MeceneStorage.getTab(tabId);
    if (!tab) return { others: [] };
    const done = tab.others || {};
    return {
      others: othersOf(tab).map((o) => ({ ...o, click: done[o.key] || null })),
    };
  },

  /** Whether creators have joined (the daemon's copy of the hub's list). */
  async joined(args) {
    const keys = args && Array.isArray(args.keys)
      ? args.keys.filter((k) => typeof k === "string" && KEY_RE.test(k)).slice(0, 16) : [];
    const token = await MeceneStorage.getToken();
    if (!keys.length || !token) return { creators: [] };
    const query = keys.map((k) => `key=${encodeURIComponent(k)}`).join("&");
    return (await MeceneDaemon.call("GET", `/creators?${query}`, undefined, token)).data;
  },

  /** Flattr one of the page's other creators, for their own part of the page. */
  async flattrOther(args) {
    const tabId = tabIdOf(args);
    const key = args && args.key;
    const tab = tabId === null ? null : await tabStateNow(tabId);
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

  /** What one of the page's creators would receive of an amount (the daemon
   * computes it from the hub's published list: the hub is not asked). */
  async giftQuote(args) {
    const gift = await giftOf(args);
    if (gift.error) return gift;
    const { data } = await MeceneDaemon.call(
      "POST", "/transfers/quote", { creator: gift.key, cents: gift.cents }, gift.token);
    return data;
  },

  /** Give one of the page's creators an amount, outside the month's split:
   * the daemon records it, then sends it to the hub (`transfer.state` is
   * "given", or "sending" while the hub is unreachable). */
  async give(args) {
    const gift = await giftOf(args);
    if (gift.error) return gift;
    const body = { id: crypto.randomUUID(), creator: gift.key, cents: gift.cents, url: gift.url };
    if (gift.title) body.title = gift.title;
    const { data } = await MeceneDaemon.call("POST", "/transfers", body, gift.token);
    return { transfer: data.transfer, status: await freshStatus(gift.token) };
  },

  /** A weight chosen after the flattr: the API has no update, so undo and
   * flattr again. Only a live flattr is re-weighted; an undone one stays undone. */
  async reweight(args) {
    const tabId = tabIdOf(args);
    const weight = args && args.weight;
    if (!Number.isInteger(weight) || weight < 1 || weight > 5) {
      return { error: { kind: "invalid", message: "a weight is 1 to 5" } };
    }
    const tab = tabId === null ? null : await MeceneStorage.getTab(tabId);
    if (!tab || !tab.flattr || tab.flattr.undone || tab.flattr.queued) {
      return { error: { kind: "invalid", message: "Flattr the page first, then choose its weight." } };
    }
    if (tab.flattr.weight === weight) {
      const token = await MeceneStorage.getToken();
      return { click: tab.flattr, status: await freshStatus(token), creators: tab.creators, url: tab.url };
    }
    const undone = await popupHandlers.undo({ tabId });
    if (undone.error) return undone;
    return flattrTab(tabId, { weight });
  },

  /** Subscribe to the page's primary creator and thing for 3, 6 or 12 months. */
  async subscribe(args) {
    const tabId = tabIdOf(args);
    const months = args && args.months;
    if (![3, 6, 12].includes(months)) return { error: { kind: "invalid", message: "3, 6 or 12" } };
    const tab = tabId === null ? null : await tabStateNow(tabId);
    if (!tab || !tab.creators.length) return { error: { kind: "nothing", message: "nothing" } };
    const token = await MeceneStorage.getToken();
    const { data } = await MeceneDaemon.call("POST", "/subscriptions", {
      id: crypto.randomUUID(), creator: tab.creators[0].key, url: thingOf(tab), months,
    }, token);
    return data;
  },

  async undo(args) {
    const tabId = tabIdOf(args);
    const tab = tabId === null ? null : await MeceneStorage.getTab(tabId);
    if (!tab || !tab.flattr || tab.flattr.queued) {
      return { error: { kind: "invalid", message: "Nothing to undo on this page." } };
    }
    const token = await MeceneStorage.getToken();
    const { data } = await MeceneDaemon.call(
      "DELETE", `/clicks/${encodeURIComponent(tab.flattr.id)}`, undefined, token);
    await MeceneStorage.setTab(tabId, { ...tab, flattr: data.click, status: data.status });
    await showBadge(tabId, tab.creators, !data.click.undone);
    return { ...data, creators: tab.creators, url: tab.url };
  },

  /** The options page: the daemon's port, and whether it answers there. */
  async settings() {
    const settings = await MeceneStorage.getSettings();
    return { port: Number.isInteger(settings.port) ? settings.port : MeceneDaemon.DEFAULT_PORT };
  },

  async setPort(args) {
    const port = args && args.port;
    if (!Number.isInteger(port) || port < 1024 || port > 65535) {
      return { error: { kind: "invalid", message: "A port is a whole number from 1024 to 65535." } };
    }
    await MeceneStorage.setSettings({ ...(await MeceneStorage.getSettings()), port });
    return { port };
  },

  /** Test the connection: is a Mécène daemon there, and is this browser paired with it? */
  async check() {
    const token = await MeceneStorage.getToken();
    try {
      const { data } = await MeceneDaemon.call("GET", "/status", undefined, token);
      return { reachable: true, paired: true, locked: Boolean(data.locked) };
    } catch (e) {
      if (e.kind === "unauthorized") return { reachable: true, paired: false };
      if (e.kind === "locked") return { reachable: true, paired: true, locked: true };
      return { reachable: false, paired: Boolean(token), message: e.message };
    }
  },

  /** The dashboard's address (the person signs in with `mecene open`). */
  async dashboardUrl() {
    return { url: await MeceneDaemon.dashboardUrl() };
  },
};

const handlers = {
  /** The content script found the page's creators. Top frame, active document only. */
  async creators(args, sender) {
    if (!sender.tab || sender.frameId !== 0) return null;
    // A prerendered or cached document is not what the tab shows (Chromium says which).
    if (sender.documentLifecycle && sender.documentLifecycle !== "active") return null;
    const url = pageUrl(sender, args && args.url);
    const creators = checkCreators(args);
    if (!url || !creators) return null;
    const title = typeof args.title === "string" ? args.title.slice(0, 200) : "";
    const state = { url, thing: checkThing(args.thing, url), creators, at: Date.now() };
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
// The generated lists first (scripts/make-psl, scripts/make-webdata), then the detector.
const DETECTOR_FILES = ["psl.js", "github-reserved.js", "tracking-params.js", "content.js"];

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

async function onTabUpdated(tabId, change, tab) {
  const url = tab && tab.url;
  if (change.status === "loading") {
    // The tab starts showing another document (a link, a redirect, Back or
    // Forward): what the worker knew belongs to the one it leaves. A reload
    // of the same address keeps it (the same thing, flattred or not).
    const known = await MeceneStorage.getTab(tabId);
    if (known && (typeof url !== "string" || withoutHash(url) !== known.url)) {
      await MeceneStorage.dropTab(tabId);
      await showBadge(tabId, [], false);
    }
    return;
  }
  if (change.status !== "complete") return;
  injections.push(`${tabId}: complete ${url ? "with url" : "without url"}`);
  // The URL can be missing (permissions still settling right after install):
  // try anyway, scripting refuses pages it may not touch.
  if (typeof url !== "string" || /^https?:/.test(url)) injectDetector(tabId);
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

// A pairing left waiting when the worker was stopped: go on asking.
MeceneStorage.getPairing().then((p) => { if (p) pollPairingSoon(); }).catch(() => {});

chrome.tabs.onRemoved.addListener((tabId) => {
  MeceneStorage.dropTab(tabId);
});
