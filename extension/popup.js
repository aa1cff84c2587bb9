/* Mécène popup: opening it flattrs the page (the Pocket model), then shows what
 * happened, with Undo. It only talks to the service worker, which owns every
 * state worth keeping: the popup closes whenever focus leaves it. */
"use strict";

const $ = (id) => document.getElementById(id);

function send(action, args) {
  return chrome.runtime.sendMessage({ action, args });
}

async function currentTab() {
  const [tab] = await chrome.tabs.query({ active: true, currentWindow: true });
  return tab ? tab.id : null;
}

const { euros } = globalThis.MeceneAmounts; // extension/amounts.js

/** Text with commands set as code: sentence("Start it with ", {code: "mecene run"}, "."). */
function sentence(...parts) {
  const out = document.createDocumentFragment();
  for (const part of parts) {
    if (typeof part === "string") out.append(part);
    else {
      const code = document.createElement("code");
      code.textContent = part.code;
      out.append(code);
    }
  }
  return out;
}

const SENTENCES = {
  no_host: () => sentence("Mécène is not set up for this browser yet: run ",
    { code: "mecene browser install" }, " on this computer, then open this panel again."),
  down: () => sentence("The Mécène daemon is not running: start it with ", { code: "mecene run" }, "."),
  revoked: () => sentence("This browser was disconnected from Mécène (in the dashboard or with ",
    { code: "mecene pair revoke" }, "). Pair it again to flattr from it."),
  locked: () => sentence("Your wallet is locked: unlock it with ", { code: "mecene unlock" },
    " or from the tray menu."),
  unauthorized: () => sentence("This browser's pairing was revoked: open this panel again to pair it."),
  nothing: () => sentence("There is nothing to flattr on this page."),
  moved: () => sentence("The tab shows another page now: open this panel again to flattr it."),
};

function show(state, message) {
  $("app").dataset.state = state;
  const node = $("message");
  if (message instanceof Node) node.replaceChildren(message);
  else node.textContent = message || "";
  node.hidden = !message;
}

function showError(error) {
  $("done").hidden = true;
  $("pairing").hidden = true;
  if (error.code === "flattr_owner") {
    // Not a failure: the person is on their own page.
    $("disconnected").hidden = true;
    return show("own", "This is your own page: Mécène does not flattr your own creator keys."
      + " Your readers' flattrs reach you.");
  }
  $("disconnected").hidden = error.kind !== "revoked";
  const said = SENTENCES[error.kind];
  show(error.kind === "revoked" ? "disconnected" : "error", said ? said() : error.message);
}

/** The creator as a person reads them: the page's words, with the key beside. */
function showCreator(key, creators) {
  const found = (creators || []).find((c) => c.key === key);
  const { name, key: readable } = MeceneKeys.displayName(key, found && found.label, found && found.source);
  $("creator").textContent = name;
  $("creator-key").textContent = readable || "";
  $("creator-key").hidden = !readable;
  $("creator").dataset.key = key;
}

/** The month's figures, always the daemon's own of this moment. */
function showFigures(s) {
  if (!s) {
    $("figures").textContent = "";
    $("balance").textContent = "";
    return;
  }
  const flattrs = s.clicks === 1 ? "1 flattr" : `${s.clicks} flattrs`;
  $("figures").textContent = s.clicks
    ? `${flattrs} this month, ${euros(s.per_click_cents)} for each flattr of weight 1, `
      + `of a ${euros(s.budget_cents)} budget.`
    : `No flattrs this month yet, of a ${euros(s.budget_cents)} budget.`;
  $("balance").textContent = `Balance: ${euros(s.balance_cents)}`
    + `${s.practice_hub ? " (practice money, on this computer)" : ""}`
    + (s.gift_tokens_cents ? `, and ${euros(s.gift_tokens_cents)} in tokens for gifts` : "")
    + "."
    + (s.given_cents ? ` Given this month, outside the budget: ${euros(s.given_cents)}.` : "");
  // Told before the month ends: the balance will not cover the budget.
  const short = s.warning === "balance_short";
  $("warning").hidden = !short;
  $("warning").replaceChildren(short
    ? sentence(`Your balance is ${euros(s.short_cents)} short of this month's budget: deposit with `,
      { code: "mecene deposit" }, " or on the dashboard.")
    : "");
}

/** Whether the creator has joined Mécène, from the daemon's copy of the hub's list. */
async function showJoined(key) {
  const answer = await send("joined", { keys: [key] });
  const info = answer && answer.creators && answer.creators.find((c) => c.key === key);
  const line = $("joined");
  if (!info || info.joined === null || info.joined === undefined) {
    line.hidden = true;
    return;
  }
  line.dataset.joined = String(info.joined);
  line.textContent = info.joined
    ? "On Mécène: paid at the end of the month."
    : answer.unlinkable ? "Not on Mécène yet: the money is held for them until they join."
      : `Not on Mécène yet: the money is held for them for ${answer.escrow_months} months.`;
  line.hidden = false;
}

let shown = null; // the click on screen

function showDone(result) {
  shown = result.click;
  const undone = Boolean(result.click.undone);
  showCreator(result.click.creator, result.creators);
  // The site, because the page names nobody (DESIGN.md, "Creator keys"): say so.
  $("fallback").hidden = !String(result.click.creator).startsWith("domain:");
  showFigures(result.status);
  $("done").hidden = false;
  $("pairing").hidden = true;
  $("headline").textContent = undone ? "Undone: not flattred" : "Flattred";
  $("undo").hidden = undone;
  $("again").hidden = !undone;
  $("weight").disabled = undone;
  showSubscription();
  $("weight").value = String(result.click.weight || 1);
  $("app").dataset.weight = String(result.click.weight || 1); // confirmed by the daemon
  show(undone ? "undone" : "flattred", "");
  // When the daemon's answer was first on screen, epoch ms (bench/popup.py).
  if (!$("app").dataset.ackAt) {
    $("app").dataset.ackAt = (performance.timeOrigin + performance.now()).toFixed(1);
  }
}

/** One row per other creator of the page, each with its own flattr button. */
async function showOthers(tabId) {
  const result = await send("others", { tabId });
  const list = $("others-list");
  list.replaceChildren();
  for (const other of (result && result.others) || []) {
    const item = document.createElement("li");
    const who = document.createElement("span");
    who.className = "who";
    const { name, key } = MeceneKeys.displayName(other.key, other.label, other.source);
    const nameLine = document.createElement("span");
    nameLine.className = "name";
    nameLine.textContent = name;
    who.append(nameLine);
    if (key) {
      const keyLine = document.createElement("span");
      keyLine.className = "key";
      keyLine.textContent = key;
      who.append(keyLine);
    }
    const button = document.createElement("button");
    button.type = "button";
    button.className = "flattr-other";
    button.dataset.key = other.key;
    const undo = document.createElement("button");
    undo.type = "button";
    undo.className = "undo-other link";
    undo.dataset.key = other.key;
    undo.textContent = "Undo";
    undo.title = `Undo the flattr of ${name}`;
    markOther(button, undo, other.click);
    button.addEventListener("click", async () => {
      button.disabled = true;
      const sent = await send("flattrOther", { tabId, key: other.key });
      if (sent.error) {
        button.disabled = false;
        return showError(sent.error);
      }
      markOther(button, undo, sent.click);
      if (sent.status) showFigures(sent.status);
    });
    undo.addEventListener("click", async () => {
      undo.disabled = true;
      const sent = await send("undoOther", { tabId, key: other.key });
      undo.disabled = false;
      if (sent.error) return showError(sent.error);
      markOther(button, undo, sent.click);
      if (sent.status) showFigures(sent.status);
    });
    const gift = document.createElement("button");
    gift.type = "button";
    gift.className = "give link";
    gift.dataset.key = other.key;
    gift.textContent = "Give…";
    gift.title = `Give ${name} an amount`;
    gift.addEventListener("click", () => openGift(other.key, name, key));
    const actions = document.createElement("span");
    actions.append(button, undo, gift);
    item.append(who, actions);
    list.append(item);
  }
  $("others").hidden = list.childElementCount === 0;
}

function markOther(button, undo, click) {
  const state = !click || click.undone ? "none" : click.queued ? "queued" : "flattred";
  button.dataset.state = state;
  button.textContent = { none: "Flattr", queued: "Saved", flattred: "Flattred ✓" }[state];
  button.disabled = state !== "none";
  undo.hidden = state !== "flattred"; // a saved one is not at the daemon yet
}

// -- a direct transfer: an amount to one creator, outside the month's split ----------

const { parseEuros } = globalThis.MeceneAmounts;
let gift = null; // {key, cents} once quoted

/** The form, for the page's creator or one of its others. */
function openGift(key, name, readable) {
  gift = { key, cents: null };
  $("give-to").textContent = readable ? `To ${name} (${readable})` : `To ${name}`;
  $("give").dataset.key = key;
  $("give-said").hidden = true;
  $("give-confirm").hidden = true;
  $("give-cancel").textContent = "Cancel";
  $("give-amount").value = "";
  $("give").hidden = false;
  $("give-amount").focus();
}

function giftSaid(state, text) {
  $("give-said").dataset.state = state;
  $("give-said").replaceChildren(text);
  $("give-said").hidden = false;
}

$("give-open").addEventListener("click", () => {
  const key = $("creator").dataset.key;
  openGift(key, $("creator").textContent, $("creator-key").hidden ? "" : $("creator-key").textContent);
});

$("give-cancel").addEventListener("click", () => {
  gift = null;
  $("give").hidden = true;
});

$("give-amount").addEventListener("input", () => {
  $("give-confirm").hidden = true; // a new amount is quoted again
  $("give-cancel").textContent = "Cancel";
});

/** What the creator receives, before anything is given. */
$("give").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!gift) return undefined;
  let cents;
  try {
    cents = parseEuros($("give-amount").value, false);
  } catch (e) {
    return giftSaid("error", e.message);
  }
  const quote = await send("giftQuote", { tabId: popupTab, key: gift.key, cents });
  if (quote.error) return giftSaid("error", quote.error.message);
  gift.cents = cents;
  const fee = quote.nonprofit ? "no fee: a non-profit" : `the hub's 10 % fee is ${euros(quote.fee_cents)}`;
  let text = `They receive ${euros(quote.net_cents)} (${fee}), from your balance, `
    + "on top of your monthly budget.";
  if (quote.joined === false) {
    text += quote.unlinkable
      ? " Not on Mécène yet: held for them until they join (as tokens, it cannot come back to you)."
      : ` Not on Mécène yet: held for them for ${quote.escrow_months} months, then back to you.`;
  }
  if (quote.short_cents) {
    giftSaid("short", sentence(`Your balance is ${euros(quote.balance_cents)}: deposit at least `
      + `${euros(quote.short_cents)} more first, with `, { code: "mecene deposit" }, "."));
    return undefined;
  }
  giftSaid("quoted", text);
  $("give-confirm").textContent = `Give ${euros(cents)}`;
  $("give-confirm").hidden = false;
  return undefined;
});

$("give-confirm").addEventListener("click", async () => {
  if (!gift || !gift.cents) return undefined;
  $("give-confirm").disabled = true;
  const sent = await send("give", { tabId: popupTab, key: gift.key, cents: gift.cents });
  $("give-confirm").disabled = false;
  if (sent.error) return giftSaid("error", sent.error.message);
  $("give-confirm").hidden = true;
  $("give-cancel").textContent = "Close"; // what was given stays given
  const t = sent.transfer;
  $("give").dataset.given = t.id;
  if (t.state === "given" && t.unlinkable) {
    giftSaid("given", `Given: ${euros(t.cents)}, as tokens the hub cannot tie to you; `
      + "they reach the creator within hours.");
  } else if (t.state === "given") {
    giftSaid("given", `Given: ${euros(t.cents)}. The hub signed its receipt.`);
  } else if (t.state === "sending" && t.error === "buying_tokens") {
    // Paid from tokens the daemon buys at a moment of their own
    // (daemon/unlinkable/pool.py): the hub learns neither amount nor moment.
    giftSaid("buying", `Recorded: ${euros(t.cents)}, as tokens the hub cannot tie to you. `
      + "They are bought at a moment of their own, within about an hour and a half, so "
      + "the hub learns neither this gift's amount nor its moment; then they reach the "
      + "creator within hours.");
  } else if (t.state === "waiting") {
    giftSaid("waiting", `Not given yet: gifts from a browser are limited to `
      + `${euros(sent.limitCents)} a day. Confirm this one on the dashboard (the Dashboard `
      + "link below); nothing leaves your balance until you do.");
  } else giftSaid("sending", `Recorded: ${euros(t.cents)}. The hub is not reachable now; `
    + "it is sent as soon as it is.");
  if (sent.status) showFigures(sent.status);
  return undefined;
});

// -- pairing: the worker owns it; the popup only shows it --------------------------------

let pairingTimer = null;

/** On first use, where to find Mécène next time: Chromium puts a new
 * extension's icon behind its puzzle-piece menu, not on the toolbar. Said
 * only while the icon is not pinned, with the shortcut the person has now. */
let pinChecked = false;
async function showPinHint() {
  if (pinChecked) return;
  pinChecked = true;
  const settings = chrome.action.getUserSettings ? await chrome.action.getUserSettings() : null;
  if (!settings || settings.isOnToolbar !== false) return;
  const commands = await chrome.commands.getAll();
  const open = commands.find((c) => c.name === "_execute_action");
  const firefox = typeof browser !== "undefined" && Boolean(browser.runtime.getBrowserInfo);
  const how = firefox
    ? "the puzzle piece in the toolbar, then ⚙ beside Mécène, then Pin to Toolbar"
    : "the puzzle piece in the toolbar, then the pin beside Mécène";
  const keys = open && open.shortcut
    ? `, or press ${open.shortcut} on any page: it opens this panel without the pin.`
    : ".";
  $("pin").textContent = `To find Mécène again, pin it: ${how}${keys}`;
  $("pin").hidden = false;
}

function showPairing(answer, tabId) {
  if (answer.status === "pending") {
    $("code").textContent = answer.code;
    document.querySelector(".code-inline").textContent = answer.code;
    const left = Math.max(0, Math.round((answer.expiresAt - Date.now()) / 1000));
    const clock = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    $("pairing-left").textContent = `The code is valid for ${clock} more. You can close this `
      + "panel: the page is flattred as soon as you approve.";
    $("done").hidden = true;
    $("pairing").hidden = false;
    show("pairing", "");
    showPinHint();
    return;
  }
  clearInterval(pairingTimer);
  if (answer.status === "approved") {
    flattr(tabId);
  } else {
    $("pairing").hidden = true;
    show("error", `The pairing code was ${answer.status === "denied" ? "denied" : "not approved in time"}: `
      + "open this panel again for a new code.");
  }
}

async function pair(tabId) {
  const started = await send("pair", { tabId });
  if (started.error) return showError(started.error);
  showPairing(started, tabId);
  if (started.status !== "pending") return undefined;
  pairingTimer = setInterval(async () => {
    const poll = await send("pairingStatus");
    if (poll.error) {
      clearInterval(pairingTimer);
      return showError(poll.error);
    }
    return showPairing(poll, tabId);
  }, 1000);
  return undefined;
}

async function flattr(tabId) {
  return showFlattr(tabId, await send("flattr", { tabId }));
}

/** The worker's answer to a flattr: done, queued, or what is in the way. */
function showFlattr(tabId, result) {
  if (result.error && result.error.kind === "access") {
    // Without site access no page can be read: ask for it, saying why.
    $("access").hidden = false;
    return show("access", "");
  }
  if (result.error && (result.error.kind === "unpaired" || result.error.kind === "unauthorized")) {
    return pair(tabId);
  }
  if (result.error) return showError(result.error);
  if (result.queued) {
    $("done").hidden = true;
    const why = {
      locked: ["Saved: your wallet is locked (unlock it with ", "mecene unlock"],
      no_host: ["Saved: Mécène is not set up for this browser yet (run ", "mecene browser install"],
    }[result.reason] || ["Saved: the Mécène daemon is not running (start it with ", "mecene run"];
    return show("queued", sentence(why[0], { code: why[1] }, "); this flattr will be delivered then."));
  }
  showDone(result);
  showJoined(result.click.creator);
  showOthers(tabId);
  loadSubscription(tabId);
  return undefined;
}

$("undo").addEventListener("click", async () => {
  const result = await send("undo", { tabId: await currentTab() });
  if (result.error) return showError(result.error);
  return showDone(result);
});

$("again").addEventListener("click", async () => flattr(await currentTab()));

$("weight").addEventListener("change", async () => {
  if (!shown || shown.undone) return undefined;
  show("saving", "Saving the new weight…");
  const tabId = await currentTab();
  const result = await send("reweight", { tabId, weight: Number($("weight").value) });
  if (result.error) return showError(result.error);
  showDone(result);
  return loadSubscription(tabId); // its weight follows the page's
});

// -- the page's subscription: one per thing, shown with Extend and Cancel ------------------

let subscription; // the page's active subscription; undefined until asked, null for none

/** "2027-03" as a person reads it: "March 2027". */
function monthName(month) {
  const [year, number] = month.split("-").map(Number);
  return new Date(Date.UTC(year, number - 1, 1))
    .toLocaleString("en", { month: "long", year: "numeric", timeZone: "UTC" });
}

function showSubscription() {
  const undone = !shown || Boolean(shown.undone);
  const sub = subscription || null;
  $("subscribe-row").hidden = undone || subscription === undefined || sub !== null;
  $("subscribed").hidden = sub === null;
  $("app").dataset.subscribed = sub ? sub.last_month : "";
  if (sub) {
    $("subscribed-text").textContent = `Subscribed until ${monthName(sub.last_month)}: `
      + `flattred each month at weight ${sub.weight}.`;
  }
}

async function loadSubscription(tabId) {
  const answer = await send("subscription", { tabId });
  subscription = answer && !answer.error ? answer.subscription : null;
  showSubscription();
}

function said(text) {
  $("subscription-said").textContent = text;
  $("subscription-said").hidden = !text;
}

for (const button of document.querySelectorAll(".subscribe")) {
  button.addEventListener("click", async () => {
    const months = Number(button.dataset.months);
    const result = await send("subscribe", { tabId: await currentTab(), months });
    if (result.error) return showError(result.error);
    subscription = result.subscription;
    said("");
    showSubscription();
    return undefined;
  });
}

for (const button of document.querySelectorAll(".extend")) {
  button.addEventListener("click", async () => {
    const extend = Number(button.dataset.months);
    const result = await send("changeSubscription", { tabId: await currentTab(), extend });
    if (result.error) return showError(result.error);
    subscription = result.subscription;
    said(`Extended by ${extend} months.`);
    showSubscription();
    return undefined;
  });
}

$("unsubscribe").addEventListener("click", async () => {
  const result = await send("changeSubscription", { tabId: await currentTab(), cancel: true });
  if (result.error) return showError(result.error);
  subscription = null;
  said(`Subscription cancelled: no automatic flattr from ${monthName(result.subscription.cancelled_month)}`
    + " on. This month's flattr stays (Undo removes it).");
  showSubscription();
  return undefined;
});

$("dashboard").addEventListener("click", async (event) => {
  event.preventDefault();
  // A one-time login link from the daemon: the dashboard opens signed in.
  const answer = await send("dashboardUrl");
  if (answer.error) return showError(answer.error);
  await chrome.tabs.create({ url: answer.url });
  window.close();
  return undefined;
});

$("pair-again").addEventListener("click", async () => {
  $("disconnected").hidden = true;
  await pair(await currentTab());
});

$("options").addEventListener("click", async (event) => {
  event.preventDefault();
  // In a tab (options_ui.open_in_tab), the same in both browsers; an open one
  // is brought forward. The popup closes once the call has gone out.
  await chrome.runtime.openOptionsPage();
  window.close();
});

let popupTab = null;

/** The flattr popup-start.js asked for as the popup opened: shown here. */
async function start({ tabId, result }) {
  popupTab = tabId;
  if (tabId === null) return show("error", "No page.");
  return showFlattr(tabId, result);
}

$("grant").addEventListener("click", async () => {
  const tabId = popupTab;
  // The request must be made while the click is being handled (no await
  // before it: the browser would no longer count it as the person's). Firefox shows
  // its prompt over this panel, which closes: the worker flattrs the page
  // once access is granted (permissions.onAdded), as it does after a pairing.
  send("accessWanted", { tabId });
  const granted = await chrome.permissions.request({ origins: ["http://*/*", "https://*/*"] });
  if (granted) {
    $("access").hidden = true;
    await flattr(tabId);
  }
});

performance.mark("mecene:script"); // User Timing marks: bench/popup.py reads them
globalThis.MecenePopupStart.then(start);
