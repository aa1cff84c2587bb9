/* Mécène options: a connection test. Like the popup, it only talks to the
 * service worker. */
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
    return say(answer.kind === "no_host"
      ? "Mécène's host is not installed for this browser: run mecene browser install, then test again."
      : "The Mécène daemon is not running: start it with mecene run, then test again.", false);
  }
  if (!answer.paired) {
    return say(answer.kind === "revoked"
      ? "This browser was disconnected from Mécène: click the toolbar button on any page to pair it again."
      : "The daemon answers. This browser is not paired yet: click the toolbar button on any page "
        + "to pair it.", true);
  }
  return say(answer.locked ? "Connected and paired. The wallet is locked: unlock it from the tray "
    + "menu or the dashboard." : "Connected and paired.", true);
}

$("check").addEventListener("click", check);
check();
