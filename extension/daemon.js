/* Mécène daemon client: the only file that knows how the daemon is reached.
 *
 * Never over TCP (DESIGN.md, "The browser's channel"): any program can listen
 * on a port while the daemon is stopped. The browser starts Mécène's native
 * messaging host ("app.mecene.daemon"), and only for this extension: the
 * host's manifest, written by `mecene browser install`, names it. The host
 * relays each message to the daemon over a socket only the person can open.
 * A message is a local API request; its answer is that route's answer:
 *
 *   → {id, key?, method, path, body?}     key: this browser's key, once made
 *   ← {id, status, body}
 *
 * One port is kept while the worker lives, opened when it wakes (`warm`); the
 * host exits when it closes.
 * Every failure becomes a DaemonError whose `kind` the popup turns into one
 * sentence with the fix: no_host, down, locked, unauthorized, revoked, refused.
 */
(() => {
  "use strict";
  const { MeceneStorage } = globalThis;
  const HOST = "app.mecene.daemon";
  const TIMEOUT_MS = 60000; // a gift waits for the hub's answer; nothing takes longer

  class DaemonError extends Error {
    constructor(kind, message, data) {
      super(message);
      this.kind = kind;
      this.data = data || null;
    }
  }

  const NO_HOST = "Mécène's host is not installed for this browser: run `mecene browser install`.";
  const DOWN = "The Mécène daemon is not running: start it with `mecene run`.";

  let port = null;
  let nextId = 1;
  const waiting = new Map(); // id → {resolve, reject, timer}

  /** Why a port closed, as the browsers word it (Chromium: runtime.lastError;
   * Firefox: port.error). */
  function closedError(closed) {
    const reason = (chrome.runtime.lastError && chrome.runtime.lastError.message)
      || (closed && closed.error && closed.error.message) || "";
    if (/not found|no such native application|forbidden|not allowed/i.test(reason)) {
      return new DaemonError("no_host", NO_HOST);
    }
    return new DaemonError("down", DOWN);
  }

  function open() {
    const opened = chrome.runtime.connectNative(HOST);
    opened.onMessage.addListener((message) => {
      const call = message && waiting.get(message.id);
      if (!call) return; // an error about a frame we never sent
      waiting.delete(message.id);
      performance.mark("w:answer");
      clearTimeout(call.timer);
      call.resolve(message);
    });
    opened.onDisconnect.addListener((closed) => {
      const error = closedError(closed);
      if (port === opened) port = null;
      for (const [id, call] of waiting) {
        if (call.port !== opened) continue;
        waiting.delete(id);
        clearTimeout(call.timer);
        call.reject(error);
      }
    });
    return opened;
  }

  function send(message) {
    if (!port) port = open();
    const via = port;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiting.delete(message.id);
        reject(new DaemonError("down", "The Mécène daemon did not answer in time."));
      }, TIMEOUT_MS);
      waiting.set(message.id, { resolve, reject, timer, port: via });
      try {
        performance.mark("w:post");
        via.postMessage(message);
      } catch (e) { // the port closed between two messages: its onDisconnect says why
        waiting.delete(message.id);
        clearTimeout(timer);
        if (port === via) port = null;
        reject(new DaemonError("down", DOWN));
      }
    });
  }

  /** One request of the local API, over the channel. `key`: this browser's key. */
  async function call(method, path, body, key) {
    const message = { id: nextId++, method, path };
    if (body !== undefined) message.body = body;
    if (key) message.key = key;
    const answer = await send(message);
    const { status } = answer;
    const data = answer.body === undefined ? null : answer.body;
    if (status >= 200 && status < 300) return { status, data };
    const code = data && data.error;
    const text = (data && data.message) || `error ${status}`;
    if (code === "daemon_down") throw new DaemonError("down", DOWN, data);
    if (status === 423) throw new DaemonError("locked", text, data);
    if (code === "revoked") {
      await MeceneStorage.setDisconnected();
      throw new DaemonError("revoked", text, data);
    }
    if (status === 401) throw new DaemonError("unauthorized", text, data);
    throw new DaemonError("refused", text, data);
  }

  /** Why there is no key to send: never paired, or disconnected by the person. */
  async function notPaired() {
    if (await MeceneStorage.getDisconnected()) {
      return { kind: "revoked", message: "This browser was disconnected from Mécène." };
    }
    return { kind: "unpaired", message: "This browser is not paired yet." };
  }

  /** Open the port ahead of the first call: the worker wakes when a page
   * reports its creators, before the person presses the toolbar button, so
   * the host (about 70 ms to start, bench/channel.py) is up by then. */
  function warm() {
    if (!port) port = open();
  }

  /** Close the port (the host exits): the next call starts a new host. */
  function disconnect() {
    const closing = port;
    port = null;
    if (!closing) return;
    closing.disconnect(); // our own disconnect fires no onDisconnect here
    for (const [id, call] of waiting) {
      if (call.port !== closing) continue;
      waiting.delete(id);
      clearTimeout(call.timer);
      call.reject(new DaemonError("down", DOWN));
    }
  }

  globalThis.MeceneDaemon = { call, warm, disconnect, notPaired, DaemonError, HOST };
})();
