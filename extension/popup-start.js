/* Mécène popup, its first act: loaded in the popup's <head>, it asks the
 * worker to flattr the active tab's page at once, before the rest of the
 * popup is parsed; popup.js shows the answer (`MecenePopupStart`). The
 * browser itself takes some 50 ms to start a popup's document; the flattr
 * starts as soon as the extension may run anything (bench/popup.py). */
"use strict";
performance.mark("mecene:head");
globalThis.MecenePopupStart = chrome.tabs.query({ active: true, currentWindow: true })
  .then(([tab]) => {
    performance.mark("mecene:tab");
    if (!tab) return { tabId: null, result: null };
    return chrome.runtime.sendMessage({ action: "flattr", args: { tabId: tab.id } })
      .then((result) => {
        performance.mark("mecene:flattr-answered");
        return { tabId: tab.id, result };
      });
  });
