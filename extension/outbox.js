/* Mécène service worker: the outbox, flattrs kept until the daemon has them.
 *
 * A flattr is stored before it is sent; the "outbox" alarm sends what is left
 * while the daemon is down or locked.
 */
(() => {
  "use strict";
  const { MeceneStorage, MeceneDaemon, MeceneTabs } = globalThis;

  const ALARM = "outbox";

  /** Send one stored flattr. {done, data?, error?}: done when the daemon has
   * answered for good (2xx or a refusal), not when it is unreachable or locked. */
  async function deliver(body, token) {
    try {
      const { data } = await MeceneDaemon.call("POST", "/clicks", body, token);
      return { done: true, data };
    } catch (e) {
      if (e.kind === "down" || e.kind === "locked" || e.kind === "no_host") {
        return { done: false, error: e };
      }
      const unpaired = e.kind === "unauthorized" || e.kind === "revoked";
      if (e.kind === "unauthorized") await MeceneStorage.setToken(null);
      return { done: !unpaired, error: e };
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
    if (left === 0) await chrome.alarms.clear(ALARM);
    return left;
  }

  /** A queued flattr reached the daemon: the tab that still shows its page learns it. */
  async function markDelivered(entry, click) {
    if (!Number.isInteger(entry.tabId) || !click) return;
    const tab = await MeceneStorage.getTab(entry.tabId);
    if (!tab) return;
    if (tab.flattr && tab.flattr.id === click.id) {
      await MeceneStorage.setTab(entry.tabId, { ...tab, flattr: click });
      await MeceneTabs.showBadge(entry.tabId, tab.creators, !click.undone);
    } else if (tab.others) {
      const key = Object.keys(tab.others).find((k) => tab.others[k].id === click.id);
      if (key) await MeceneStorage.setTab(entry.tabId, { ...tab, others: { ...tab.others, [key]: click } });
    }
  }

  /** Send a new flattr, kept in the outbox first. The answer: {click, status} when
   * the daemon took it (or already had this thing: 409 flattr_once gives its
   * click), {queued, reason} when it must wait; throws when it was refused. */
  async function sendFlattr(tabId, body, token) {
    // Kept and sent at once: the answer is used only once it is kept too, and
    // a flattr sent twice is one flattr (its id).
    const kept = MeceneStorage.putOutbox(body.id, { body, tabId, at: Date.now() });
    const sent = await deliver(body, token);
    await kept;
    if (!sent.done && (sent.error.kind === "unauthorized" || sent.error.kind === "revoked")) {
      // Revoked: the popup pairs again and flattrs afresh; this one is dropped.
      await MeceneStorage.dropOutbox(body.id);
      throw sent.error;
    }
    if (!sent.done) {
      await chrome.alarms.create(ALARM, { delayInMinutes: 0.5, periodInMinutes: 0.5 });
      return { queued: true, reason: sent.error.kind };
    }
    // Dropped without waiting: were the worker stopped first, the alarm would
    // send it again and the daemon answer with the same click.
    MeceneStorage.dropOutbox(body.id).catch(() => {});
    if (sent.data) return { click: sent.data.click, status: sent.data.status };
    const data = sent.error.data;
    if (data && data.error === "flattr_once" && data.click) return { click: data.click, status: null };
    throw sent.error;
  }

  globalThis.MeceneOutbox = { ALARM, deliverOutbox, sendFlattr };
})();
