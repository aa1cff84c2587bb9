/* Mécène storage: the only file that knows storage keys (STYLE.md).
 * Per-tab state lives in chrome.storage.session: Manifest V3 stops the
 * service worker whenever it likes, so nothing may live only in memory. */
(() => {
  "use strict";
  const tabKey = (tabId) => `tab:${tabId}`;
  const OUTBOX = "outbox:";
  let identityMade = null; // one key, even when two calls ask at once
  let tokenRead = null; // the stored key's promise, while nothing changes it
  // The per-tab states as stored, read once per worker life and kept in step
  // (storage.onChanged): every page load asks for its tab's state, and in
  // Firefox a storage read at each navigation cost ~3 % of page load time
  // (bench/extension.py). storage.session stays the truth: a worker stopped
  // and started again reads it back.
  let tabStates = null; // Map: tab key -> state (null: a deleted one)
  let tabStatesRead = null;
  let written = new Map(); // what changed while the first read was under way
  const note = (key, state) => (tabStates || written).set(key, state === undefined ? null : state);
  function statesNow() {
    if (tabStates) return Promise.resolve(tabStates);
    tabStatesRead = tabStatesRead || chrome.storage.session.get(null).then((all) => {
      const read = new Map(Object.entries(all).filter(([k]) => k.startsWith("tab:")));
      for (const [k, v] of written) read.set(k, v); // newer than the read
      written = new Map();
      tabStates = read;
      return tabStates;
    }, () => {
      tabStatesRead = null;
      return new Map();
    });
    return tabStatesRead;
  }
  chrome.storage.onChanged.addListener((changes, area) => {
    if (area === "local" && "token" in changes) tokenRead = null;
    if (area !== "session") return;
    for (const [key, change] of Object.entries(changes)) {
      if (key.startsWith("tab:")) note(key, change.newValue);
    }
  });
  globalThis.MeceneStorage = {
    /** What the worker knows of one tab's document: {url, creators, title?, at,
     * flattr?, status?, others?}. Dropped when the tab loads another document. */
    async setTab(tabId, state) {
      note(tabKey(tabId), state);
      await chrome.storage.session.set({ [tabKey(tabId)]: state });
    },
    async getTab(tabId) {
      return (await statesNow()).get(tabKey(tabId)) || null;
    },
    async dropTab(tabId) {
      note(tabKey(tabId), undefined);
      await chrome.storage.session.remove(tabKey(tabId));
    },
    /** This browser profile's key: 256 random bits the extension makes once
     * and sends with every message on its channel (daemon.js); the daemon
     * keeps only its hash. A reinstalled extension makes a new one, and is a
     * new browser to the daemon. */
    identityKey() {
      if (!identityMade) {
        identityMade = (async () => {
          const { identity } = await chrome.storage.local.get("identity");
          if (identity && typeof identity.key === "string") return identity.key;
          const bytes = crypto.getRandomValues(new Uint8Array(32));
          const key = btoa(String.fromCharCode(...bytes))
            .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
          await chrome.storage.local.set({ identity: { key, at: Date.now() } });
          return key;
        })().finally(() => { identityMade = null; });
      }
      return identityMade;
    },
    /** The key, once the person approved this browser (null before). Read
     * once per worker life and kept in memory (a flattr is on the popup's
     * path: Firefox's storage.local takes milliseconds), and forgotten when
     * any of the extension's pages changes it. */
    getToken() {
      if (!tokenRead) {
        tokenRead = chrome.storage.local.get("token").then((s) => s.token || null);
        tokenRead.catch(() => { tokenRead = null; });
      }
      return tokenRead;
    },
    async setToken(token) {
      tokenRead = null;
      if (token) await chrome.storage.local.set({ token });
      else await chrome.storage.local.remove("token");
      tokenRead = null;
    },
    /** The person revoked this browser: its key is dropped (pairing again
     * makes a new one) and the popup says it was disconnected until then. */
    async setDisconnected() {
      tokenRead = null;
      await chrome.storage.local.remove(["token", "identity"]);
      tokenRead = null;
      await chrome.storage.local.set({ disconnectedAt: Date.now() });
    },
    async getDisconnected() {
      return (await chrome.storage.local.get("disconnectedAt")).disconnectedAt || null;
    },
    async clearDisconnected() {
      await chrome.storage.local.remove("disconnectedAt");
    },
    /** Flattrs not yet acknowledged by the daemon, by client id: {body, tabId, at}.
     * One storage key per flattr: two flattrs queued at once never overwrite
     * each other (a single outbox object read and rewritten whole could). */
    async getOutbox() {
      const all = await chrome.storage.local.get(null);
      const out = {};
      for (const [key, entry] of Object.entries(all)) {
        if (key.startsWith(OUTBOX)) out[key.slice(OUTBOX.length)] = entry;
      }
      return out;
    },
    async putOutbox(id, entry) {
      await chrome.storage.local.set({ [OUTBOX + id]: entry });
    },
    async dropOutbox(id) {
      await chrome.storage.local.remove(OUTBOX + id);
    },
    async clearOutbox() {
      await chrome.storage.local.remove(Object.keys(await this.getOutbox()).map((id) => OUTBOX + id));
    },
    /** The pairing waiting for approval, owned by the worker:
     * {id, code, expiresAt (ms), tabId?, url?} (the flattr that started it). */
    async getPairing() {
      return (await chrome.storage.session.get("pairing")).pairing || null;
    },
    async setPairing(pairing) {
      if (pairing) await chrome.storage.session.set({ pairing });
      else await chrome.storage.session.remove("pairing");
    },
    /** How the last pairing ended ({status, at}), for a popup opened afterwards. */
    async getPairingEnd() {
      return (await chrome.storage.session.get("pairingEnd")).pairingEnd || null;
    },
    async setPairingEnd(end) {
      if (end) await chrome.storage.session.set({ pairingEnd: end });
      else await chrome.storage.session.remove("pairingEnd");
    },
    /** The page whose popup asked for site access ({tabId, url}), taken once. */
    async setAccessWanted(wanted) {
      await chrome.storage.session.set({ accessWanted: wanted });
    },
    async takeAccessWanted() {
      const { accessWanted } = await chrome.storage.session.get("accessWanted");
      await chrome.storage.session.remove("accessWanted");
      return accessWanted || null;
    },
  };
})();
