/* Mécène popup: opening it flattrs the page (the Pocket model), then shows what
 * happened, with Undo. It only talks to the service worker. */
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const SENTENCES = {
  down: "The Mécène daemon is not running: start it with `mecene run`.",
  locked: "Your wallet is locked: unlock it with `mecene unlock` or the tray menu.",
  unauthorized: "This browser's pairing was revoked: open this panel again to pair it.",
  nothing: "There is nothing to flattr on this page.",
};

function send(action, args) {
  return chrome.runtime.sendMessage({ action, args });
}

async function currentTab() {
  if (params.has("tab")) return Number(params.get("tab")); // tests open the popup in a tab
  const [tab] = await chrome.tabs.query({ active: true, currentWindow: true });
  return tab ? tab.id : null;
}

function euros(cents) {
  return cents === null || cents === undefined ? "?" : `${(cents / 100).toFixed(2)}\u00a0€`;
}

function show(state, message) {
  $("app").dataset.state = state;
  $("message").textContent = message || "";
  $("message").hidden = !message;
}

/** "alice" for flattr:alice, the label when the page gave one. */
function creatorName(key, creators) {
  const found = (creators || []).find((c) => c.key === key);
  if (found && found.label) return found.label;
  return key.slice(key.indexOf(":") + 1);
}

/** The month's figures, from the daemon's status that came with a flattr. */
function showFigures(s) {
  const flattrs = s && s.clicks === 1 ? "1 flattr" : `${s ? s.clicks : 0} flattrs`;
  $("figures").textContent = s
    ? `${flattrs} this month, ${euros(s.per_click_cents)} each, of a ${euros(s.budget_cents)} budget.`
    : "Already flattred this month.";
  // Told before the month ends: the balance will not cover the budget.
  const short = s && s.warning === "balance_short";
  $("warning").hidden = !short;
  $("warning").textContent = short
    ? `Your balance is ${euros(s.short_cents)} short of this month's budget: `
      + "deposit with `mecene deposit` or the dashboard."
    : "";
}

function showDone(result) {
  const key = result.click.creator;
  $("creator").textContent = creatorName(key, result.creators);
  $("creator").title = key;
  showFigures(result.status);
  $("done").hidden = false;
  $("pairing").hidden = true;
  $("undo").disabled = Boolean(result.click.undone);
  $("weight").value = String(result.click.weight || 1);
  $("app").dataset.weight = String(result.click.weight || 1); // confirmed by the daemon
  show(result.click.undone ? "undone" : "flattred", result.click.undone ? "Undone." : "");
  // Milliseconds from the popup opening to the daemon's answer shown (bench/extension.py).
  if (!$("app").dataset.ackMs) $("app").dataset.ackMs = performance.now().toFixed(1);
}

/** One row per other creator of the page, each with its own flattr button. */
async function showOthers(tabId) {
  const result = await send("others", { tabId });
  const list = $("others-list");
  list.replaceChildren();
  for (const other of (result && result.others) || []) {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = other.label || other.key.slice(other.key.indexOf(":") + 1);
    name.title = other.key;
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.key = other.key;
    markOther(button, other.click);
    button.addEventListener("click", async () => {
      button.disabled = true;
      const sent = await send("flattrOther", { tabId, key: other.key });
      if (sent.error) {
        button.disabled = false;
        return showError(sent.error);
      }
      markOther(button, sent.click);
      if (sent.status) showFigures(sent.status);
    });
    item.append(name, button);
    list.append(item);
  }
  $("others").hidden = list.childElementCount === 0;
}

function markOther(button, click) {
  const state = !click || click.undone ? "none" : click.queued ? "queued" : "flattred";
  button.dataset.state = state;
  button.textContent = { none: "Flattr", queued: "Saved", flattred: "Flattred ✓" }[state];
  button.disabled = state !== "none";
}

function showError(error) {
  show("error", SENTENCES[error.kind] || error.message);
}

async function pair(tabId) {
  const started = await send("pair");
  if (started.error) return showError(started.error);
  $("code").textContent = started.code;
  document.querySelector(".code-inline").textContent = started.code;
  $("pairing").hidden = false;
  show("pairing", "");
  const timer = setInterval(async () => {
    const poll = await send("pairingStatus");
    if (poll.error) { clearInterval(timer); showError(poll.error); return; }
    if (poll.status === "approved") { clearInterval(timer); flattr(tabId); }
    if (poll.status === "denied" || poll.status === "expired") {
      clearInterval(timer);
      show("error", `Pairing ${poll.status}: open this panel again for a new code.`);
    }
  }, 1000);
}

async function flattr(tabId) {
  const result = await send("flattr", { tabId });
  if (result.error && (result.error.kind === "unpaired" || result.error.kind === "unauthorized")) {
    return pair(tabId);
  }
  if (result.error) return showError(result.error);
  if (result.queued) {
    $("done").hidden = true;
    const why = result.reason === "locked"
      ? "your wallet is locked (unlock it with `mecene unlock`)"
      : "the Mécène daemon is not running (start it with `mecene run`)";
    return show("queued", `Saved: ${why}; this flattr will be delivered then.`);
  }
  showDone(result);
  showOthers(tabId);
}

$("undo").addEventListener("click", async () => {
  const result = await send("undo", { tabId: await currentTab() });
  if (result.error) return showError(result.error);
  showDone({ ...result, creators: [] });
});

$("weight").addEventListener("change", async () => {
  show("saving", "Saving the new weight…");
  const result = await send("reweight", { tabId: await currentTab(), weight: Number($("weight").value) });
  if (result.error) return showError(result.error);
  showDone(result);
});

for (const button of document.querySelectorAll(".subscribe")) {
  button.addEventListener("click", async () => {
    const months = Number(button.dataset.months);
    const result = await send("subscribe", { tabId: await currentTab(), months });
    if (result.error) return showError(result.error);
    $("subscribed").textContent = `Subscribed until ${result.subscription.last_month}: `
      + "a flattr each month.";
    $("subscribed").hidden = false;
    $("app").dataset.subscribed = String(months);
  });
}

currentTab().then((tabId) => (tabId === null ? show("error", "No page.") : flattr(tabId)));
