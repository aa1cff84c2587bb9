/* Mécène service worker: the connection to the daemon, for the options page
 * and the popup's Dashboard link.
 *
 * Whether the host is installed and the daemon answers, whether this browser
 * is paired, and a one-time login link to the dashboard.
 */
(() => {
  "use strict";
  const { MeceneStorage, MeceneDaemon } = globalThis;

  /** The options page's and the popup's actions (background.js routes them). */
  const actions = {
    /** Test the connection: the host, the daemon, and whether this browser is paired. */
    async check() {
      const token = await MeceneStorage.getToken();
      try {
        const { data } = await MeceneDaemon.call("GET", "/status", undefined, token || undefined);
        return { reachable: true, paired: true, locked: Boolean(data.locked) };
      } catch (e) {
        if (e.kind === "unauthorized" || e.kind === "revoked") {
          return { reachable: true, paired: false, kind: e.kind, message: e.message };
        }
        if (e.kind === "locked") return { reachable: true, paired: true, locked: true };
        return { reachable: false, paired: Boolean(token), kind: e.kind, message: e.message };
      }
    },

    /** The dashboard, signed in: a one-time login link the daemon makes for a
     * paired browser. Unpaired, or the daemon down: the dashboard's address,
     * where the person signs in with `mecene open`. */
    async dashboardUrl() {
      const token = await MeceneStorage.getToken();
      if (token) {
        try {
          const { data } = await MeceneDaemon.call("POST", "/dashboard/links", {}, token);
          return { url: data.url, signedIn: true };
        } catch (e) {
          return { error: { kind: e.kind || "refused", message: e.message } };
        }
      }
      return { error: await MeceneDaemon.notPaired() };
    },
  };

  globalThis.MeceneConnection = { actions };
})();
