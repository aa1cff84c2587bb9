/* Mécène options: which port the daemon listens on, and a connection test.
 * Like the popup, it only talks to the service worker. */
"use strict";

const $ = (id) => document.getElementById(id);
const send = (action, args) => chrome.runtime.sendMessage({ action, args });

function say(text, ok) {
  $("result").textContent = text;
  $("result").dataset.ok = String(ok);
}

async function check() {
  say("Testing…", true);
  const answer = await send("check");
  if (!answer.reachable) {
    return say(`No Mécène daemon answers on port ${$("port").value}. Start it with mecene run, `
      + "or check the port.", false);
  }
  if (!answer.paired) return say("The daemon answers. This browser is not paired yet: click the "
    + "toolbar button on any page to pair it.", true);
  return say(answer.locked ? "Connected and paired. The wallet is locked: unlock it from the tray "
    + "menu or the dashboard." : "Connected and paired.", true);
}

$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("port").value.trim();
  const saved = await send("setPort", { port: /^\d{1,5}$/.test(text) ? Number(text) : NaN });
  if (saved.error) return say(saved.error.message, false);
  document.body.dataset.saved = String(saved.port);
  return check();
});

$("check").addEventListener("click", check);

send("settings").then((s) => { $("port").value = String(s.port); });
