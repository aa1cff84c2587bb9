/* Mécène daemon client: the only file that knows the daemon's address.
 * The daemon listens on 127.0.0.1 (DESIGN.md, "The local API"); the port is a
 * setting (default 8737). Every failure becomes a DaemonError whose `kind`
 * the popup turns into one sentence with the fix. */
(() => {
  "use strict";
  const { MeceneStorage } = globalThis;
  const DEFAULT_PORT = 8737;

  class DaemonError extends Error {
    constructor(kind, message, data) {
      super(message);
      this.kind = kind; // down | locked | unauthorized | refused
      this.data = data || null;
    }
  }

  async function port() {
    const settings = await MeceneStorage.getSettings();
    return Number.isInteger(settings.port) ? settings.port : DEFAULT_PORT;
  }

  /** The dashboard's page; the person signs in with `mecene open`. */
  async function dashboardUrl() {
    return `http://127.0.0.1:${await port()}/`;
  }

  async function call(method, path, body, token) {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(`http://127.0.0.1:${await port()}/api/v1${path}`, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store", credentials: "omit",
      });
    } catch (e) {
      throw new DaemonError("down", "The Mécène daemon is not running.");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (e) { /* not JSON: handled below */ }
    if (response.ok) return { status: response.status, data };
    const message = (data && data.message) || `HTTP ${response.status}`;
    if (response.status === 423) throw new DaemonError("locked", message, data);
    if (response.status === 401) throw new DaemonError("unauthorized", message, data);
    throw new DaemonError("refused", message, data);
  }

  globalThis.MeceneDaemon = { call, dashboardUrl, DaemonError, DEFAULT_PORT };
})();
