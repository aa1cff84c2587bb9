/* Mécène pairing policy: the life of one pairing, as a pure function.
 *
 * The service worker owns a pending pairing (DESIGN.md, "The local API"): the
 * person closes the popup to go and approve the code in a terminal, the tray
 * or the dashboard, so the worker keeps asking the daemon (an alarm wakes it
 * if the browser stopped it) until the code is approved, denied or expired,
 * then stores the token and makes the flattr that started it.
 *
 * `MecenePairing.next(state, event, now)` → {state, actions}. No I/O, no
 * clock: pairing-worker.js performs the actions. Tested as a table
 * (tests/extension/test_pairing_policy.py).
 *
 *   state   null | {id, code, expiresAt, tabId?, url?}
 *   events  {type: "start", tabId?, url?}        the popup asks (no token yet)
 *           {type: "created", id, code, expiresIn, tabId?, url?}  the daemon answered POST /pairing
 *           {type: "answer", status, token?}      the daemon answered GET /pairing/ID
 *           {type: "gone"}                        GET /pairing/ID said 404 (expired, forgotten)
 *           {type: "tick"}                        the alarm or the polling loop
 *   actions {do: "request"}                       POST /pairing, then a "created" event
 *           {do: "poll"}                          GET /pairing/ID, then "answer" or "gone"
 *           {do: "wake", on: true|false}          the alarm that outlives the worker
 *           {do: "token", token}                  store the token
 *           {do: "flattr", tabId, url}            the flattr the person asked for
 *           {do: "ended", status}                 remember how it ended, for the popup
 */
(() => {
  "use strict";

  function next(state, event, now) {
    const live = state && now < state.expiresAt ? state : null;
    switch (event.type) {
      case "start":
        if (live) { // the same code, and the newest page to flattr
          const moved = Number.isInteger(event.tabId)
            ? { ...live, tabId: event.tabId, url: event.url } : live;
          return { state: moved, actions: [] };
        }
        return { state: null, actions: [{ do: "request" }] };
      case "created": {
        const fresh = {
          id: event.id, code: event.code, expiresAt: now + 1000 * event.expiresIn,
        };
        if (Number.isInteger(event.tabId)) Object.assign(fresh, { tabId: event.tabId, url: event.url });
        return { state: fresh, actions: [{ do: "wake", on: true }, { do: "poll" }] };
      }
      case "tick":
        if (!state) return { state: null, actions: [{ do: "wake", on: false }] };
        if (!live) return end(state, "expired");
        return { state, actions: [{ do: "poll" }] };
      case "answer":
        if (!state) return { state: null, actions: [] };
        if (event.status === "approved" && typeof event.token === "string") {
          const actions = [{ do: "token", token: event.token }];
          if (Number.isInteger(state.tabId)) {
            actions.push({ do: "flattr", tabId: state.tabId, url: state.url });
          }
          return { state: null, actions: [...actions, ...end(state, "approved").actions] };
        }
        if (event.status === "pending") return live ? { state, actions: [] } : end(state, "expired");
        return end(state, event.status === "denied" ? "denied" : "expired");
      case "gone":
        return state ? end(state, "expired") : { state: null, actions: [] };
      default:
        return { state, actions: [] };
    }
  }

  function end(_state, status) {
    return { state: null, actions: [{ do: "wake", on: false }, { do: "ended", status }] };
  }

  globalThis.MecenePairing = { next };
})();
