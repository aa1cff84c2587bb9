/* Mécène service worker: the connection to the daemon, for the options page.
 *
 * Its port, whether it answers, whether this browser is paired, and the
 * dashboard's address.
 */
(() => {
  "use strict";
  const { MeceneStorage, MeceneDaemon } = globalThis;

  /** The options page's actions (background.js routes them). */
  const actions = {
    /** The options page: the daemon's port, and whether it answers there. */
    async settings() {
      const settings = await MeceneStorage.getSettings();
      return { port: Number.isInteger(settings.port) ? settings.port : MeceneDaemon.DEFAULT_PORT };
    },

    async setPort(args) {
      const port = args && args.port;
      if (!Number.isInteger(port) || port < 1024 || port > 65535) {
        return { error: { kind: "invalid", message: "A port is a whole number from 1024 to 65535." } };
      }
      await MeceneStorage.setSettings({ ...(await MeceneStorage.getSettings()), port });
      return { port };
    },

    /** Test the connection: is a Mécène daemon there, and is this browser paired with it? */
    async check() {
      const token = await MeceneStorage.getToken();
      try {
        const { data } = await MeceneDaemon.call("GET", "/status", undefined, token);
        return { reachable: true, paired: true, locked: Boolean(data.locked) };
      } catch (e) {
        if (e.kind === "unauthorized") return { reachable: true, paired: false };
        if (e.kind === "locked") return { reachable: true, paired: true, locked: true };
        return { reachable: false, paired: Boolean(token), message: e.message };
      }
    },

    /** The dashboard's address (the person signs in with `mecene open`). */
    async dashboardUrl() {
      return { url: await MeceneDaemon.dashboardUrl() };
    },
  };

  globalThis.MeceneConnection = { actions };
})();
