/* Mécène service worker: the router. It holds only the message tables; each
 * part of the worker is its own file:
 *
 *   checks.js          what comes from content scripts, checked
 *   outbox.js          flattrs kept until the daemon has them
 *   pairing-worker.js  pairing, owned by the worker (pairing.js is the policy)
 *   flattr.js          the page's creators, flattrs and gifts
 *   injection.js       the detector, injected into loaded pages; site access
 *   connection.js      the daemon's port and the connection check
 *
 * Every message is documented in PROTOCOL.md ("The extension's messages"),
 * which tests/mecene/test_protocol_doc.py checks against these tables. State lives in
 * chrome.storage.session (storage.js).
 */
"use strict";
if (typeof importScripts === "function" && !globalThis.MeceneStorage) {
  // Chromium's service worker; Firefox loads the same files from the manifest.
  importScripts(
    "storage.js", "daemon.js", "pairing.js",
    "checks.js", "outbox.js", "pairing-worker.js", "flattr.js", "injection.js", "connection.js",
  );
}

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
  giftQuote: flattrActions.giftQuote,
  give: flattrActions.give,
  reweight: flattrActions.reweight,
  subscribe: flattrActions.subscribe,
  undo: flattrActions.undo,
  settings: connectionActions.settings,
  setPort: connectionActions.setPort,
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
  const table = fromExtensionPage(sender) ? popupHandlers : handlers;
  if (!own.call(table, message.action)) return false;
  table[message.action](message.args, sender).then(
    (result) => sendResponse(result),
    (error) => sendResponse(failure(error)),
  );
  return true; // the answer comes asynchronously
});

/** The worker's alarms: they wake a stopped worker. */
const alarmHandlers = {
  [OUTBOX_ALARM]: deliverOutbox,
  [PAIRING_ALARM]: () => pairingEvent({ type: "tick" }),
};

chrome.alarms.onAlarm.addListener((alarm) => {
  const handler = alarmHandlers[alarm.name];
  if (handler) handler();
});
