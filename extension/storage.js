/* Mécène storage: the only file that knows storage keys (STYLE.md).
 * Per-tab state lives in chrome.storage.session: Manifest V3 stops the
 * service worker whenever it likes, so nothing may live only in memory. */
(() => {
  "use strict";
  const tabKey = (tabId) => `tab:${tabId}`;
  const OUTBOX = "outbox:";
  globalThis.MeceneStorage = {
    /** What the worker knows of one tab's document: {url, creators, title?, at,
     * flattr?, status?, others?}. Dropped when the tab loads another document. */
    async setTab(tabId, state) {
      await chrome.storage.session.set({ [tabKey(tabId)]: state });
    },
    async getTab(tabId) {
      const key = tabKey(tabId);
      return (await chrome.storage.session.get(key))[key] || null;
    },
    async dropTab(tabId) {
      await chrome.storage.session.remove(tabKey(tabId));
    },
    /** {port} — which daemon to talk to. */
    async getSettings() {
      return (await chrome.storage.local.get("settings")).settings || {};
    },
    async setSettings(settings) {
      await chrome.storage.local.set({ settings });
    },
    /** The bearer token the daemon handed out after the person approved. */
    async getToken() {
      return (await chrome.storage.local.get("token")).token || null;
    },
    async setToken(token) {
      if (token) await chrome.storage.local.set({ token });
      else await chrome.storage.local.remove("token");
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
