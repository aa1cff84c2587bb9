/* Mécène service worker: pairing, owned by the worker (pairing.js is the policy).
 *
 * The worker asks the daemon until the code is approved, denied or expired,
 * also after the popup has closed. The browser pairs with its key (storage.js):
 * approved, that key is what it sends from then on.
 */
(() => {
  "use strict";
  const {
    MeceneStorage, MeceneDaemon, MecenePairing, MeceneChecks, MeceneTabs, MeceneOutbox, MeceneFlattr,
  } = globalThis;

  const PLATFORMS = {
    linux: "Linux", mac: "macOS", win: "Windows", cros: "ChromeOS", android: "Android",
    openbsd: "OpenBSD", fuchsia: "Fuchsia",
  };

  /** "Chromium on Linux", "Firefox on Windows": how the browser is listed in
   * `mecene pair list` and the dashboard. */
  async function clientName() {
    let brand = "";
    if (typeof browser !== "undefined" && browser.runtime && browser.runtime.getBrowserInfo) {
      brand = (await browser.runtime.getBrowserInfo()).name; // Firefox
    } else {
      const brands = (navigator.userAgentData && navigator.userAgentData.brands) || [];
      // Chrome lists "Chromium" beside its own name: prefer the more specific one.
      const named = brands.map((b) => b.brand).filter((b) => !/Not.?A.?Brand/i.test(b));
      brand = named.find((b) => b !== "Chromium") || named[0] || "";
    }
    let os = "";
    try {
      os = PLATFORMS[(await chrome.runtime.getPlatformInfo()).os] || "";
    } catch (e) { /* unknown platform: the browser's name alone */ }
    const name = brand || "Browser";
    return (os ? `${name} on ${os}` : name).slice(0, 80);
  }

  const ALARM = "pairing";
  let pairingLoop = null;

  /** Feed one event to the pairing policy and carry out what it says. */
  async function pairingEvent(event) {
    const before = await MeceneStorage.getPairing();
    const { state, actions } = MecenePairing.next(before, event, Date.now());
    await MeceneStorage.setPairing(state);
    for (const action of actions) {
      if (action.do === "request") {
        const key = await MeceneStorage.identityKey();
        let data;
        try {
          ({ data } = await MeceneDaemon.call("POST", "/pairing", { client: await clientName() }, key));
        } catch (e) {
          if (!(e.data && e.data.error === "paired_already")) throw e;
          // Approved already (its answer was lost): the key is this browser's.
          await MeceneStorage.setToken(key);
          await MeceneStorage.setPairing(null);
          await MeceneStorage.setPairingEnd({ status: "approved", at: Date.now() });
          return;
        }
        await pairingEvent({
          type: "created", id: data.pairing_id, code: data.code, expiresIn: data.expires_in,
          tabId: event.tabId, url: event.url,
        });
      } else if (action.do === "poll") {
        pollPairingSoon();
      } else if (action.do === "wake") {
        if (action.on) await chrome.alarms.create(ALARM, { periodInMinutes: 0.5 });
        else await chrome.alarms.clear(ALARM);
      } else if (action.do === "token") {
        await MeceneStorage.setToken(action.token);
        await MeceneOutbox.deliverOutbox();
      } else if (action.do === "ended") {
        await MeceneStorage.setPairingEnd({ status: action.status, at: Date.now() });
      } else if (action.do === "flattr") {
        // The flattr the person asked for, if that tab still shows that page.
        MeceneFlattr.flattrTab(action.tabId, { expectUrl: action.url }).catch(() => {});
      }
    }
  }

  async function pollPairing() {
    const pairing = await MeceneStorage.getPairing();
    if (!pairing) return;
    try {
      // Approved, the key this browser sent is its credential from now on.
      const key = await MeceneStorage.identityKey();
      const { data } = await MeceneDaemon.call("GET", `/pairing/${encodeURIComponent(pairing.id)}`, undefined, key);
      await pairingEvent({ type: "answer", status: data.status, token: data.status === "approved" ? key : undefined });
    } catch (e) {
      if (e.kind === "refused") await pairingEvent({ type: "gone" }); // 404: forgotten
      // down: the daemon restarts or is stopped; the next tick asks again
    }
  }

  /** Ask every second while the worker lives; the alarm wakes a stopped worker. */
  function pollPairingSoon() {
    if (pairingLoop) return;
    pairingLoop = setTimeout(async () => {
      pairingLoop = null;
      await pollPairing();
      if (await MeceneStorage.getPairing()) await pairingEvent({ type: "tick" });
    }, 1000);
  }

  /** The popup's pairing actions (background.js routes them). */
  const actions = {
    /** Start pairing, or show the pairing already waiting (the same code). The
     * worker keeps asking the daemon after the popup closes. */
    async pair(args) {
      const tabId = MeceneChecks.tabIdOf(args);
      const url = tabId === null ? null : await MeceneTabs.tabUrlNow(tabId);
      await MeceneStorage.setPairingEnd(null);
      await MeceneStorage.clearDisconnected();
      await pairingEvent({ type: "start", tabId: url ? tabId : undefined, url: url || undefined });
      return actions.pairingStatus();
    },

    /** {status: "pending", code, expiresAt} while it waits; then how it ended. */
    async pairingStatus() {
      const pairing = await MeceneStorage.getPairing();
      if (pairing && Date.now() < pairing.expiresAt) {
        pollPairingSoon();
        return { status: "pending", code: pairing.code, expiresAt: pairing.expiresAt };
      }
      const end = await MeceneStorage.getPairingEnd();
      return { status: end ? end.status : "none" };
    },
  };

  // A pairing left waiting when the worker was stopped: go on asking.
  MeceneStorage.getPairing().then((p) => { if (p) pollPairingSoon(); }).catch(() => {});

  globalThis.MecenePairingWorker = { ALARM, pairingEvent, actions };
})();
