/* Mécène service worker: direct gifts to one of the page's creators, outside
 * the month's split (the popup's actions; background.js routes them).
 */
(() => {
  "use strict";
  const { MeceneStorage, MeceneDaemon, MeceneChecks, MeceneTabs, MeceneFlattr } = globalThis;

  /** A gift the popup asks for: one of the tab's creators (the primary one, for
   * the thing itself, or another, for their part of the page), whole cents. */
  async function giftOf(args) {
    const tabId = MeceneChecks.tabIdOf(args);
    const key = args && args.key;
    const cents = args && args.cents;
    if (!Number.isSafeInteger(cents) || cents < 1) {
      return { error: { kind: "invalid", message: "An amount is whole cents." } };
    }
    const tab = tabId === null ? null : await MeceneTabs.tabStateNow(tabId);
    if (!tab || !tab.creators.length || typeof key !== "string") {
      return { error: { kind: "invalid", message: "not a creator of this page" } };
    }
    const token = await MeceneStorage.getToken();
    if (!token) return { error: await MeceneDaemon.notPaired() };
    if (tab.creators[0].key === key) {
      return { key, cents, url: MeceneChecks.thingOf(tab), title: tab.title, token };
    }
    const other = MeceneFlattr.othersOf(tab).find((o) => o.key === key);
    if (!other) return { error: { kind: "invalid", message: "not a creator of this page" } };
    return { key, cents, url: other.url, title: tab.title, token };
  }

  const actions = {
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
     * "given", or "sending" while the hub is unreachable, or "waiting" past
     * the browsers' daily limit, until the person confirms it). */
    async give(args) {
      const gift = await giftOf(args);
      if (gift.error) return gift;
      const body = { id: crypto.randomUUID(), creator: gift.key, cents: gift.cents, url: gift.url };
      if (gift.title) body.title = gift.title;
      const { data } = await MeceneDaemon.call("POST", "/transfers", body, gift.token);
      // Past the browsers' daily limit the gift waits for the person (dashboard).
      const limitCents = data.confirm ? data.limit_cents : null;
      return { transfer: data.transfer, limitCents, status: await MeceneFlattr.freshStatus(gift.token) };
    },
  };

  globalThis.MeceneGifts = { actions };
})();
