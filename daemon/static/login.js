/* The one-time link's code is in the fragment (never sent in a request line
 * or a Referer): post it once, get the session cookie and the session's
 * secret, go to the dashboard. The secret stays in this tab's sessionStorage,
 * which no other origin (no other port of 127.0.0.1) can read: the cookie
 * reaches every local server, so it authorises nothing without it. */
"use strict";
(async () => {
  const code = location.hash.slice(1);
  history.replaceState(null, "", location.pathname); // the code leaves the address bar
  const state = document.getElementById("login-state");
  if (!code) {
    state.textContent = "This page needs a login link: run `mecene open`.";
    return;
  }
  const resp = await fetch("/api/v1/dashboard/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ code }),
    credentials: "same-origin",
  });
  if (resp.ok) {
    const { secret } = await resp.json();
    sessionStorage.setItem("mecene-session", secret);
    location.replace("/dashboard/");
  } else {
    state.textContent = "This login link is not valid any more: run `mecene open` for a new one.";
    document.body.dataset.state = "refused";
  }
})();
