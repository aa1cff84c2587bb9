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
  };
})();
