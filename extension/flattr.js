/* Mécène service worker: the page's creators, and flattrs and gifts to them.
 *
 * What the detector found in each tab (the `creators` message), the toolbar's
 * flattr, its weight, undo, subscriptions and direct gifts.
 */
"use strict";

async function showBadge(tabId, creators, flattred) {
  // ✓ once flattred this month; else a number when the page names creators
  // beyond its site; nothing otherwise.
  const named = (creators || []).filter((c) => c.scope === "page" && !c.key.startsWith("domain:"));
  const text = flattred ? "✓" : named.length ? String(named.length) : "";
  await chrome.action.setBadgeText({ tabId, text }).catch(() => {}); // the tab may be gone
}


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
/** The popup's flattr actions (background.js routes them). */
const flattrActions = {
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
    const undone = await flattrActions.undo({ tabId });
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
};

/** The content script found the page's creators (background.js routes it). */
const pageActions = {
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
