/* Mécène service worker: flattrs of the page's creators, their weight, undo
 * and subscriptions (the popup's actions; background.js routes them).
 */
(() => {
  "use strict";
  const { MeceneStorage, MeceneDaemon, MeceneChecks, MeceneTabs, MeceneOutbox } = globalThis;
  const { thingOf, tabIdOf, KEY_RE, OWN_SOURCES } = MeceneChecks;

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
      out.push({ key: c.key, label: c.label, source: c.source, scope: c.scope, url });
    }
    return out.slice(0, 16);
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
  function flattrTab(tabId, { weight = 1, expectUrl = null, gate = null } = {}) {
    return MeceneTabs.oneAtATime(tabId, async (after) => {
      const state = Promise.all([MeceneTabs.tabStateNow(tabId), MeceneStorage.getToken()]);
      state.catch(() => {}); // when the gate refuses, nobody waits for it
      const refused = await gate;
      if (refused) return { error: refused };
      const [tab, token] = await state;
      if (!tab || !tab.creators.length) {
        return { error: { kind: "nothing", message: "Nothing to flattr on this page." } };
      }
      if (expectUrl && tab.url !== expectUrl) {
        return { error: { kind: "moved", message: "The tab shows another page now." } };
      }
      if (!token) return { error: await MeceneDaemon.notPaired() };
      performance.mark("w:state");
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
      const sent = await MeceneOutbox.sendFlattr(tabId, body, token);
      if (sent.queued) {
        const queued = { id: body.id, creator: body.creator, url: body.url, weight: body.weight, queued: true, body };
        await MeceneStorage.setTab(tabId, { ...tab, flattr: queued, status: null });
        return { queued: true, click: queued, creators: tab.creators, reason: sent.reason, url: tab.url };
      }
      const { click } = sent; // a 409 flattr_once: already flattred, shown with Undo
      const status = sent.status || await freshStatus(token);
      // The popup has its answer now; the tab's state is kept before the
      // tab's next job (were the worker stopped first, the daemon would
      // answer the next flattr of this page with this click: flattr_once).
      after(Promise.all([
        MeceneStorage.setTab(tabId, { ...tab, flattr: click, status }),
        MeceneTabs.showBadge(tabId, tab.creators, !click.undone),
      ]));
      performance.mark("w:reply");
      return { click, status, creators: tab.creators, url: tab.url };
    });
  }

  /** The subscription to the tab's thing and primary creator that places
   * flattrs still (not cancelled, not finished), or null. */
  async function subscriptionOf(tab, token) {
    if (!tab.creators || !tab.creators.length) return null;
    const { data } = await MeceneDaemon.call("GET", "/subscriptions", undefined, token);
    const thing = thingOf(tab);
    const key = tab.creators[0].key;
    return (data.subscriptions || []).find((s) => s.state === "active" && s.url === thing
      && s.creator === key) || null;
  }

  /** The popup's flattr actions; each returns a plain object (or {error}). */
  const actions = {
    /** Flattr the tab's primary creator (the toolbar click). */
    async flattr(args) {
      // Where a flattr's time goes (bench/popup.py reads these User Timing
      // marks); only the last flattr's are kept.
      performance.clearMarks();
      performance.mark("w:msg");
      const tabId = tabIdOf(args);
      if (tabId === null) return { error: { kind: "invalid", message: "no tab" } };
      // Asked while the tab's state is read: a flattr waits for one round trip.
      const gate = MeceneTabs.siteAccess().then((allowed) => (allowed ? null
        : { kind: "access", message: "Mécène may not read web pages yet." }));
      const weight = Number.isInteger(args.weight) && args.weight >= 1 && args.weight <= 5
        ? args.weight : 1;
      return flattrTab(tabId, { weight, gate });
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
      const tab = tabId === null ? null : await MeceneTabs.tabStateNow(tabId);
      const other = tab && typeof key === "string" ? othersOf(tab).find((o) => o.key === key) : null;
      if (!other) return { error: { kind: "invalid", message: "not a creator of this page" } };
      const token = await MeceneStorage.getToken();
      if (!token) return { error: await MeceneDaemon.notPaired() };
      const known = (tab.others || {})[key];
      if (known && !known.undone) return { click: known };
      const body = { id: crypto.randomUUID(), url: other.url, creator: other.key, weight: 1 };
      const sent = await MeceneOutbox.sendFlattr(tabId, body, token);
      const click = sent.queued ? { ...body, queued: true } : sent.click;
      const fresh = (await MeceneStorage.getTab(tabId)) || tab;
      await MeceneStorage.setTab(tabId, { ...fresh, others: { ...(fresh.others || {}), [key]: click } });
      return sent.queued ? { queued: true, click, reason: sent.reason } : { click, status: sent.status };
    },

    /** Undo the flattr of one of the page's other creators. */
    async undoOther(args) {
      const tabId = tabIdOf(args);
      const key = args && args.key;
      const tab = tabId === null ? null : await MeceneStorage.getTab(tabId);
      const known = tab && typeof key === "string" ? (tab.others || {})[key] : null;
      if (!known || known.undone || known.queued) {
        return { error: { kind: "invalid", message: "Nothing to undo for this creator." } };
      }
      const token = await MeceneStorage.getToken();
      const { data } = await MeceneDaemon.call(
        "DELETE", `/clicks/${encodeURIComponent(known.id)}`, undefined, token);
      const fresh = (await MeceneStorage.getTab(tabId)) || tab;
      await MeceneStorage.setTab(tabId, {
        ...fresh, others: { ...(fresh.others || {}), [key]: data.click },
      });
      return { click: data.click, status: data.status };
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
      const undone = await actions.undo({ tabId });
      if (undone.error) return undone;
      const done = await flattrTab(tabId, { weight });
      // The thing's subscription flattrs it at the weight the person chose.
      const token = await MeceneStorage.getToken();
      const sub = done.click && !done.error ? await subscriptionOf(tab, token) : null;
      if (sub && sub.weight !== weight) {
        await MeceneDaemon.call("PATCH", `/subscriptions/${encodeURIComponent(sub.id)}`, { weight }, token);
      }
      return done;
    },

    /** Subscribe to the page's primary creator and thing for 3, 6 or 12
     * months, at the weight the page's flattr has (one subscription per
     * thing: the daemon answers with the one there is). */
    async subscribe(args) {
      const tabId = tabIdOf(args);
      const months = args && args.months;
      if (![3, 6, 12].includes(months)) return { error: { kind: "invalid", message: "3, 6 or 12" } };
      const tab = tabId === null ? null : await MeceneTabs.tabStateNow(tabId);
      if (!tab || !tab.creators.length) return { error: { kind: "nothing", message: "nothing" } };
      const token = await MeceneStorage.getToken();
      const body = { id: crypto.randomUUID(), creator: tab.creators[0].key, url: thingOf(tab), months };
      const weight = tab.flattr && !tab.flattr.undone ? tab.flattr.weight : null;
      if (Number.isInteger(weight)) body.weight = weight;
      const { data } = await MeceneDaemon.call("POST", "/subscriptions", body, token);
      return data;
    },

    /** The page's subscription that still places flattrs, or null. */
    async subscription(args) {
      const tabId = tabIdOf(args);
      const tab = tabId === null ? null : await MeceneStorage.getTab(tabId);
      const token = await MeceneStorage.getToken();
      return { subscription: tab && token ? await subscriptionOf(tab, token) : null };
    },

    /** Extend the page's subscription by 3, 6 or 12 months, or cancel it. */
    async changeSubscription(args) {
      const tabId = tabIdOf(args);
      const extend = args && args.extend;
      const cancel = Boolean(args && args.cancel);
      if (!cancel && ![3, 6, 12].includes(extend)) {
        return { error: { kind: "invalid", message: "extend by 3, 6 or 12 months" } };
      }
      const tab = tabId === null ? null : await MeceneStorage.getTab(tabId);
      const token = await MeceneStorage.getToken();
      const sub = tab && token ? await subscriptionOf(tab, token) : null;
      if (!sub) return { error: { kind: "invalid", message: "This page has no subscription." } };
      const path = `/subscriptions/${encodeURIComponent(sub.id)}`;
      const { data } = cancel
        ? await MeceneDaemon.call("DELETE", path, undefined, token)
        : await MeceneDaemon.call("PATCH", path, { extend }, token);
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
      await MeceneTabs.showBadge(tabId, tab.creators, !data.click.undone);
      return { ...data, creators: tab.creators, url: tab.url };
    },
  };

  globalThis.MeceneFlattr = { othersOf, freshStatus, flattrTab, actions };
})();
