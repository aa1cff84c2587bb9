/* Mécène storage: the only file that knows storage keys (STYLE.md).
 * Per-tab state lives in chrome.storage.session: Manifest V3 stops the
 * service worker whenever it likes, so nothing may live only in memory. */
(() => {
  "use strict";
  const tabKey = (tabId) => `tab:${tabId}`;
  globalThis.MeceneStorage = {
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
    /** Flattrs not yet acknowledged by the daemon, by client id: {body, tabId}. */
    async getOutbox() {
      return (await chrome.storage.local.get("outbox")).outbox || {};
    },
    async putOutbox(id, entry) {
      const outbox = await this.getOutbox();
      outbox[id] = entry;
      await chrome.storage.local.set({ outbox });
    },
    async dropOutbox(id) {
      const outbox = await this.getOutbox();
      delete outbox[id];
      await chrome.storage.local.set({ outbox });
    },
    /** The pairing waiting for approval: {id, code}. */
    async getPairing() {
      return (await chrome.storage.session.get("pairing")).pairing || null;
    },
    async setPairing(pairing) {
      if (pairing) await chrome.storage.session.set({ pairing });
      else await chrome.storage.session.remove("pairing");
    },
  };
})();
