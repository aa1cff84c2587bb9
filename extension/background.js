/* Mécène service worker: the router, and the one place that names every part
 * of the worker and what each one needs (the composition root). Each part is
 * one file that defines one namespace object and names its dependencies on its
 * first line (`const { … } = globalThis;`); a part uses only the parts loaded
 * before it, so no two parts depend on each other (tools/worker-graph.js
 * checks it, tests/extension/test_extension_lint.py runs the check):
 *
 *   storage.js         MeceneStorage        the only file that knows storage keys
 *   daemon.js          MeceneDaemon         the only file that knows how the daemon is reached
 *   pairing.js         MecenePairing        the pairing policy (pure)
 *   checks.js          MeceneChecks         what comes from content scripts, checked
 *   tabs.js            MeceneTabs           each tab's state, address and badge; the detector
 *   outbox.js          MeceneOutbox         flattrs kept until the daemon has them
 *   flattr.js          MeceneFlattr         flattrs, weights, undo, subscriptions
 *   gifts.js           MeceneGifts          direct gifts
 *   pairing-worker.js  MecenePairingWorker  pairing, owned by the worker
 *   injection.js       MeceneInjection      when the detector is injected; site access
 *   connection.js      MeceneConnection     the connection check; the dashboard, signed in
 *
 * Every message is documented in PROTOCOL.md ("The extension's messages"),
 * which tests/mecene/test_protocol_doc.py checks against these tables. State lives in
 * chrome.storage (storage.js).
 */
"use strict";
if (typeof importScripts === "function" && !globalThis.MeceneStorage) {
  // Chromium's service worker; Firefox loads the same files from the manifest.
  importScripts(
    "storage.js", "daemon.js", "pairing.js", "checks.js", "tabs.js", "outbox.js",
    "flattr.js", "gifts.js", "pairing-worker.js", "injection.js", "connection.js",
  );
}

const { actions: injectionActions } = MeceneInjection;
const { actions: pairingActions } = MecenePairingWorker;
const { actions: flattrActions } = MeceneFlattr;
const { actions: giftActions } = MeceneGifts;
const { actions: connectionActions } = MeceneConnection;
const { pageActions } = MeceneTabs;

/** From the extension's own pages (the popup, the options page): these spend money. */
const popupHandlers = {
  access: injectionActions.access,
  accessWanted: injectionActions.accessWanted,
  pair: pairingActions.pair,
  pairingStatus: pairingActions.pairingStatus,
  flattr: flattrActions.flattr,
  others: flattrActions.others,
  joined: flattrActions.joined,
  flattrOther: flattrActions.flattrOther,
  undoOther: flattrActions.undoOther,
  giftQuote: giftActions.giftQuote,
  give: giftActions.give,
  reweight: flattrActions.reweight,
  subscribe: flattrActions.subscribe,
  subscription: flattrActions.subscription,
  changeSubscription: flattrActions.changeSubscription,
  undo: flattrActions.undo,
  check: connectionActions.check,
  dashboardUrl: connectionActions.dashboardUrl,
};

/** From content scripts (untrusted: checks.js). */
const handlers = {
  creators: pageActions.creators,
};

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  if (sender.id !== chrome.runtime.id) return false;
  if (!message || typeof message !== "object" || typeof message.action !== "string") return false;
  const own = Object.prototype.hasOwnProperty;
  // The popup's actions spend money: only the extension's own pages may ask.
  const table = MeceneChecks.fromExtensionPage(sender) ? popupHandlers : handlers;
  if (!own.call(table, message.action)) return false;
  table[message.action](message.args, sender).then(
    (result) => sendResponse(result),
    (error) => sendResponse(MeceneChecks.failure(error)),
  );
  return true; // the answer comes asynchronously
});

/** The worker's alarms: they wake a stopped worker. */
const alarmHandlers = {
  [MeceneOutbox.ALARM]: MeceneOutbox.deliverOutbox,
  [MecenePairingWorker.ALARM]: () => MecenePairingWorker.pairingEvent({ type: "tick" }),
};

// The worker has woken (a page reported its creators, the popup opened, an
// alarm): start the host now, so a flattr does not wait for it.
MeceneDaemon.warm();

chrome.alarms.onAlarm.addListener((alarm) => {
  const handler = alarmHandlers[alarm.name];
  if (handler) handler();
});
