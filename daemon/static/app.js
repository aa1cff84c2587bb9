/* Mécène dashboard: the month at a glance and every setting, over the local
 * API with the session cookie and the session's secret (a header: the cookie
 * alone authorises nothing, since every server on 127.0.0.1 receives it). No framework, no external file: the page's
 * Content-Security-Policy allows only this origin. Everything shown is set
 * with textContent (creator keys and titles come from web pages). */
"use strict";

const $ = (id) => document.getElementById(id);
const API = "/api/v1";

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error;
    this.body = body;
  }
}

async function api(method, path, body) {
  const secret = sessionStorage.getItem("mecene-session") || "";
  const init = { method, credentials: "same-origin", headers: { "X-Mecene-Session": secret } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(API + path, init);
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

// amounts.js and keys.js: the extension's own, copied by scripts/make-webdata.
const { amount, parseEuros } = globalThis.MeceneAmounts;
const { readableKey } = globalThis.MeceneKeys;

function euros(cents) {
  return cents === null || cents === undefined ? "—" : globalThis.MeceneAmounts.euros(cents);
}

/** "4.50" or "4,50" → 450; "" → null when optional; anything else throws. */
const cents = parseEuros;

function notify(message) {
  $("notice").textContent = message;
  $("notice").hidden = !message;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function button(label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await onClick();
      notify("");
    } catch (e) {
      notify(e.message);
    }
    await refresh();
  });
  return b;
}

function row(tbody, cells) {
  const tr = document.createElement("tr");
  for (const c of cells) tr.append(c instanceof Node ? c : cell(String(c)));
  tbody.append(tr);
  return tr;
}

/** A table with nothing to show says so. */
function emptyNote(tbody, text) {
  if (tbody.rows.length) return;
  const td = cell(text, "empty");
  td.colSpan = tbody.parentElement.tHead.rows[0].cells.length;
  row(tbody, [td]);
}

/** A creator as a person reads it: "liberapay.com/carol", "Flattr ID alice", "bob.example". */
function creatorName(key) {
  return readableKey(key);
}

/** A thing: its title when the page gave one, else its address without the scheme. */
function thingName(title, url) {
  if (title) return title;
  if (!url) return "(a creator)";
  return url.replace(/^https?:\/\//, "").replace(/\/$/, "");
}

let chartRows = [];

/** Horizontal bars: each creator's share of the month's spend. Drawn at the
 * chart's own width in pixels (text stays 12 px when the page is narrow);
 * below 520 px the name goes above its bar. */
function drawChart(allocations) {
  if (allocations) {
    const totals = new Map();
    for (const a of allocations) totals.set(a.creator, (totals.get(a.creator) || 0) + a.cents);
    chartRows = [...totals].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1));
  }
  const svg = $("chart");
  svg.replaceChildren();
  const width = Math.max(200, Math.min(720, svg.getBoundingClientRect().width || 720));
  const stacked = width < 520;
  const labelWidth = stacked ? 0 : Math.round(width * 0.34);
  const amountWidth = 80;
  const barRoom = width - labelWidth - amountWidth;
  const height = stacked ? 40 : 24;
  const max = Math.max(1, ...chartRows.map((r) => r[1]));
  const ns = "http://www.w3.org/2000/svg";
  svg.setAttribute("viewBox", `0 0 ${width} ${Math.max(1, chartRows.length) * height}`);
  svg.setAttribute("height", String(Math.max(1, chartRows.length) * height));
  const chars = Math.floor((stacked ? width : labelWidth - 8) / 7);
  chartRows.forEach(([creator, value], i) => {
    const top = i * height;
    const barY = stacked ? top + 20 : top + 4;
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", "0");
    label.setAttribute("y", String(top + 16));
    const name = creatorName(creator);
    label.textContent = name.length > chars ? `${name.slice(0, chars - 1)}…` : name;
    const title = document.createElementNS(ns, "title");
    title.textContent = name;
    label.append(title);
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("class", "bar");
    bar.setAttribute("x", String(labelWidth));
    bar.setAttribute("y", String(barY));
    bar.setAttribute("height", "14");
    const length = Math.max(2, Math.round((value * barRoom) / max));
    bar.setAttribute("width", String(length));
    bar.dataset.creator = creator;
    bar.dataset.cents = String(value);
    const amount = document.createElementNS(ns, "text");
    amount.setAttribute("x", String(labelWidth + length + 6));
    amount.setAttribute("y", String(barY + 12));
    amount.textContent = euros(value);
    svg.append(label, bar, amount);
  });
  svg.dataset.bars = String(chartRows.length);
}

window.addEventListener("resize", () => drawChart(null));

/** "2026-11" as a person reads it: "November 2026". */
function monthName(month) {
  const [year, number] = month.split("-").map(Number);
  return new Date(Date.UTC(year, number - 1, 15))
    .toLocaleString("en-GB", { month: "long", year: "numeric", timeZone: "UTC" });
}

async function showMonth(status) {
  $("month-name").textContent = monthName(status.month);
  const flattrs = status.clicks === 1 ? "1 flattr" : `${status.clicks} flattrs`;
  $("month-figures").textContent = `${flattrs}, ${euros(status.per_click_cents)} for each `
    + `flattr of weight 1; ${euros(status.spend_cents)} of a ${euros(status.budget_cents)} budget.`;
  const month = await api("GET", `/months/${status.month}`);
  drawChart(month.allocations);
  const clicks = await api("GET", `/clicks?month=${status.month}`);
  const tbody = $("clicks").tBodies[0];
  tbody.replaceChildren();
  for (const c of clicks.clicks) {
    const tr = row(tbody, [
      cell(thingName(c.title, c.url)),
      cell(creatorName(c.creator)),
      cell(String(c.weight), "num"),
      button("Undo", () => api("DELETE", `/clicks/${c.id}`)),
    ]);
    tr.dataset.click = c.id;
  }
  emptyNote(tbody, "No flattrs yet this month.");
}

/** What became of a settled month's money, as the hub last said; what the
 * signed receipt says was accepted until the hub has said more. */
function outcomeText(detail) {
  if (detail.unlinkable) return tokensText(detail.tokens || {});
  const o = detail.outcome;
  if (!o) {
    const r = detail.receipt || {};
    return `${euros(r.spend_cents)} accepted on ${(detail.settled_at || "").slice(0, 10)}; `
      + "the hub pays it out to creators shortly";
  }
  const parts = [
    [o.pending_cents, "accepted, being paid out by the hub"],
    [o.credited_cents, "paid to creators"],
    [o.withheld_cents, "waiting for creators to give 2 € in that month"],
    [o.escrow_cents, "held for creators not on Mécène yet (back to you after 12 months)"],
    [o.returned_cents, "returned to you: nobody claimed it"],
  ].filter(([cents]) => cents > 0).map(([cents, what]) => `${euros(cents)} ${what}`);
  const when = (detail.outcome_at || "").slice(0, 10);
  return `${parts.join("; ") || "nothing to pay"} (as of ${when})`;
}

/** An unlinkable month: its tokens, where they are. The hub cannot say
 * what became of them for this person: it does not know whose they were. */
function tokensText(t) {
  const count = (state) => (t[state] ? t[state].tokens : 0);
  const all = Object.values(t).reduce((n, v) => n + v.tokens, 0);
  if (!all) return "paid as tokens the hub cannot tie to you";
  const parts = [`paid as ${all} tokens the hub cannot tie to you`];
  const held = t.redeemed ? t.redeemed.held_tokens || 0 : 0;
  if (count("redeemed") > held) parts.push(`${count("redeemed") - held} delivered to creators`);
  if (held) {
    parts.push(`${held} (${euros(t.redeemed.held_cents)}) held at the hub for creators not on`
      + " Mécène yet, theirs when they join");
  }
  if (count("ready")) parts.push(`${count("ready")} on their way, each at its own moment`);
  if (count("planned") + count("blinded")) {
    parts.push(`${count("planned") + count("blinded")} waiting for the hub to sign`);
  }
  if (count("failed")) parts.push(`${count("failed")} refused by the hub`);
  return parts.join("; ");
}

async function showMonths(current) {
  const { months } = await api("GET", "/months");
  const tbody = $("months").tBodies[0];
  tbody.replaceChildren();
  for (const m of months.filter((x) => x.month !== current)) {
    let receipt = m.sync_error ? `waiting: ${m.sync_error.replace(/_/g, " ")}` : "";
    if (m.sync_error === "settled_elsewhere") {
      receipt = "settled by another of your computers: taking its month";
    }
    if (m.state === "settled") {
      try {
        receipt = outcomeText(await api("GET", `/months/${m.month}`));
      } catch (e) {
        receipt = "settled: the hub's receipt is kept";
      }
    }
    const late = (m.moved || []).filter((x) => x.from_month === m.month);
    if (late.length) {
      // Told where the person looks: which flattrs went to the next month.
      const names = late.map((x) => (x.url ? thingName(x.title, x.url) : creatorName(x.creator)))
        .join(", ");
      const to = late[0].to_month ? monthName(late[0].to_month) : "this month";
      receipt += `${receipt ? ". " : ""}${late.length === 1 ? "1 flattr" : `${late.length} flattrs`}`
        + ` came after it was settled (made offline, or on another computer), moved to ${to}: `
        + names;
    }
    const tr = row(tbody, [
      cell(monthName(m.month), "word"), cell(m.state, "word"), cell(euros(m.spend_cents), "num"),
      cell(m.given_cents ? euros(m.given_cents) : "—", "num"), cell(receipt),
    ]);
    tr.dataset.month = m.month;
  }
  emptyNote(tbody, "No past month yet.");
}

async function showSubscriptions() {
  const { subscriptions } = await api("GET", "/subscriptions");
  const tbody = $("subscriptions").tBodies[0];
  tbody.replaceChildren();
  for (const s of subscriptions) {
    row(tbody, [
      cell(s.url ? thingName(s.title, s.url) : creatorName(s.creator)),
      cell(s.last_month),
      cell(String(s.weight)),
      cell(s.state),
      s.state === "active"
        ? button("Cancel", () => api("DELETE", `/subscriptions/${s.id}`)) : cell(""),
    ]);
  }
  emptyNote(tbody, "No subscriptions: subscribe from the browser's Mécène panel.");
}

async function showSettings() {
  if (document.activeElement && $("settings-form").contains(document.activeElement)) return;
  if ($("settings-form").dataset.dirty === "true") return; // typed, not saved yet
  const { settings, backups } = await api("GET", "/settings");
  const asEuros = (c) => (c === null ? "" : amount(c));
  $("backup-dir").value = settings.backup_dir || "";
  $("backup-keep").value = String(settings.backup_keep);
  showBackups(settings, backups);
  $("budget").value = asEuros(settings.budget_cents);
  $("min-click").value = asEuros(settings.min_click_cents);
  $("cap").value = asEuros(settings.cap_cents);
  $("browser-gifts").value = asEuros(settings.browser_gift_limit_cents);
  $("private").checked = Boolean(settings.private);
  $("unlinkable").checked = Boolean(settings.unlinkable);
  $("charity").value = settings.charity || "";
  showPrivacy();
}

/** The automatic backups: the last one, or why it failed, or how to start. */
function showBackups(settings, backups) {
  const line = $("backup-state");
  line.dataset.state = backups.error ? "error" : backups.last_at ? "done" : "none";
  if (backups.error) {
    line.textContent = `${backups.error[0].toUpperCase()}${backups.error.slice(1)}; `
      + "tried again within the hour.";
  } else if (backups.last_at && settings.backup_dir) {
    const when = new Date(backups.last_at).toLocaleString([], {
      dateStyle: "medium", timeStyle: "short" });
    const command = document.createElement("code");
    command.textContent = "mecene restore --from FILE";
    line.replaceChildren(`Last backup ${when}: ${backups.last_file}. It opens with your `
      + "passphrase or your recovery phrase: ", command, ".");
  } else {
    line.textContent = settings.backup_dir ? "The first backup is taken now."
      : "No automatic backups: your recovery phrase brings back the account and what "
        + "your hub keeps for it; a backup brings everything back, this month's flattrs too.";
  }
}

/** The encrypted copy at the hub (PROTOCOL.md, "Encrypted records"): when it
 * was last kept, or why not; with the practice hub, that it is on this disk. */
async function showRecords(practiceHub) {
  const line = $("records-state");
  const what = "your settings, subscriptions, receipts and unspent tokens";
  if (practiceHub) {
    line.dataset.state = "practice";
    line.textContent = "Your practice hub lives on this computer, with the encrypted copy of "
      + `${what}: only a backup keeps them if this disk dies.`;
    return;
  }
  const { hub } = await api("GET", "/hub");
  const records = hub.records;
  if (records.restoring) {
    line.dataset.state = "restoring";
    line.textContent = `Bringing back ${what} from your hub…`;
  } else if (records.kept_at) {
    const when = new Date(records.kept_at).toLocaleString([], {
      dateStyle: "medium", timeStyle: "short" });
    line.dataset.state = records.error ? "error" : "kept";
    line.textContent = `An encrypted copy of ${what} is kept at your hub (last ${when}); `
      + "your recovery phrase brings it back."
      + (records.error ? ` The last try failed: ${records.error}.` : "");
  } else {
    line.dataset.state = records.error ? "error" : "none";
    line.textContent = `An encrypted copy of ${what} is kept at your hub once you have `
      + "made a deposit there.";
  }
}

/** Private settlements only matter to a month that names its creators. */
function showPrivacy() {
  const unlinkable = $("unlinkable").checked;
  $("private").disabled = unlinkable;
  $("private-note").hidden = !unlinkable;
}
$("unlinkable").addEventListener("change", showPrivacy);

/** This month's direct transfers, each as it stands at the hub. */
async function showTransfers(month) {
  const { transfers } = await api("GET", `/transfers?month=${month}`);
  const tbody = $("transfers").tBodies[0];
  tbody.replaceChildren();
  const said = {
    given: "given",
    sending: "on its way to the hub",
    refused: "refused",
    waiting: "asked for by a browser, over its daily limit: yours to confirm",
  };
  for (const t of transfers) {
    let state = t.state === "refused" ? `refused: ${t.message || t.error}` : said[t.state];
    if (t.state === "sending" && t.error === "buying_tokens") {
      state = `waiting for its tokens: ${t.message}`; // daemon/unlinkable/pool.py
    }
    const stateCell = cell(state);
    if (t.state === "waiting") {
      for (const [label, method, path] of [
        ["Confirm", "POST", `/transfers/${t.id}/confirm`], ["Decline", "DELETE", `/transfers/${t.id}`],
      ]) {
        const b = button(label, async () => {
          try {
            await api(method, path, method === "POST" ? {} : undefined);
            notify("");
          } catch (e) {
            notify(e.message);
          }
          await refresh();
        });
        b.dataset.action = label.toLowerCase();
        stateCell.append(" ", b);
      }
    }
    const tr = row(tbody, [
      cell(creatorName(t.creator)), cell(euros(t.cents), "num"), cell(t.note || ""), stateCell,
    ]);
    tr.dataset.transfer = t.id;
    tr.dataset.state = t.state;
  }
  emptyNote(tbody, "Nothing given this month outside the budget.");
  // A gift on its way (its tokens bought at a moment of their own, or the
  // hub unreachable) is shown again as it moves.
  if (transfers.some((t) => t.state === "sending") && !sendingTimer) {
    sendingTimer = setTimeout(() => {
      sendingTimer = null;
      refresh().catch((e) => notify(e.message));
    }, 3000);
  }
}
let sendingTimer = null;

let giftQuote = null;
$("give-form").addEventListener("input", () => {
  $("give-confirm").hidden = true; // changed: quote again first
});

$("give-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const creator = $("give-key").value.trim();
    const quote = await api("POST", "/transfers/quote", {
      creator, cents: cents($("give-amount").value, false),
    });
    const fee = quote.nonprofit ? "no fee: a non-profit"
      : `the hub's 10 % fee is ${euros(quote.fee_cents)}`;
    let text = `${creatorName(quote.creator)} receives ${euros(quote.net_cents)} of `
      + `${euros(quote.cents)} (${fee}).`;
    if (quote.joined === false && quote.unlinkable) {
      text += " Not on Mécène yet: held for them until they join (as tokens, it cannot "
        + "come back to you).";
    } else if (quote.joined === false) {
      text += ` Not on Mécène yet: held for them for ${quote.escrow_months} months, `
        + "then back to you.";
    }
    if (quote.short_cents) {
      text += ` Your balance is ${euros(quote.balance_cents)}: deposit at least `
        + `${euros(quote.short_cents)} more first.`;
    }
    $("give-quote").textContent = text;
    $("give-quote").hidden = false;
    giftQuote = quote.short_cents ? null : { ...quote, note: $("give-note").value.trim() };
    $("give-confirm").textContent = `Give ${euros(quote.cents)}`;
    $("give-confirm").hidden = !giftQuote;
    notify("");
  } catch (e) {
    notify(e.message);
  }
});

$("give-confirm").addEventListener("click", async () => {
  if (!giftQuote) return;
  try {
    const body = { id: crypto.randomUUID(), creator: giftQuote.creator, cents: giftQuote.cents };
    if (giftQuote.note) body.note = giftQuote.note;
    const { transfer } = await api("POST", "/transfers", body);
    $("give-quote").textContent = transfer.state === "given"
      ? `Given: ${euros(transfer.cents)} to ${creatorName(transfer.creator)}.`
      : `Recorded: ${euros(transfer.cents)}; sent to the hub as soon as it answers.`;
    $("give-confirm").hidden = true;
    giftQuote = null;
    $("give-form").reset();
    notify("");
  } catch (e) {
    notify(e.message);
  }
  await refresh();
});

/** Line after line: what the person received as a creator, and why the rest waits. */
async function showCreator() {
  const box = $("creator");
  const line = (...parts) => {
    const p = document.createElement("p");
    p.append(...parts);
    box.append(p);
  };
  const code = (text) => {
    const c = document.createElement("code");
    c.textContent = text;
    return c;
  };
  let me;
  try {
    me = await api("GET", "/hub/account");
  } catch (e) {
    box.replaceChildren();
    line(`The hub cannot be reached just now (${e.message}).`);
    return;
  }
  box.replaceChildren();
  const got = me.received;
  if (!me.keys.length && !got.gross_cents && !me.escrow.length) {
    line("Nothing received yet. To receive flattrs, get a Flattr ID with ",
      code("mecene creator flattr-id"), " or prove a key you own with ",
      code("mecene creator claim KEY"), ".");
    return;
  }
  const fee = me.nonprofit ? "no fee (a non-profit)" : `a fee of ${euros(got.fee_cents)} (10 %)`;
  line(`Received ${euros(got.gross_cents)} from givers, ${fee}: ${euros(got.net_cents)} to you.`);
  const balance = me.creator_balance_cents;
  if (me.withdrawable_cents) {
    line(`Balance ${euros(balance)}, withdrawable: `, code("mecene creator withdraw EUROS"), ".");
  } else if (balance) {
    line(`Balance ${euros(balance)}: not withdrawable yet, the smallest withdrawal is `
      + `${euros(me.min_withdrawal_cents)}.`);
  }
  for (const w of me.withheld) {
    line(`${euros(w.cents)} for ${w.month} waits until you give at least `
      + `${euros(me.min_giving_cents)} in ${w.month} (to receive, you must give).`);
  }
  for (const e of me.escrow) {
    // What the owner receives: the hub's fee is taken when the key is proved.
    const net = e.net_cents === undefined ? e.cents : e.net_cents;
    const given = e.fee_cents ? ` (${euros(e.cents)} given, less the hub's fee ${euros(e.fee_cents)})` : "";
    line(`${euros(net)} waits in escrow under ${creatorName(e.key)}${given}: yours once you prove it.`);
  }
  if (me.keys.length) line(`Your keys: ${me.keys.map(creatorName).join(", ")}.`);
}

async function showBrowsers() {
  const { browsers } = await api("GET", "/browsers");
  const tbody = $("browsers").tBodies[0];
  tbody.replaceChildren();
  for (const b of browsers) {
    const when = (stamp) => (stamp ? `${stamp.slice(0, 10)} ${stamp.slice(11, 16)} UTC` : "never");
    const tr = row(tbody, [
      cell(b.name),
      cell(b.fingerprint),
      cell(when(b.created_at)),
      cell(when(b.last_used_at)),
      cell(b.revoked_at ? `disconnected ${when(b.revoked_at)}` : "active"),
      b.revoked_at ? cell("") : button("Revoke", () => api("DELETE", `/browsers/${b.id}`)),
    ]);
    tr.dataset.browser = b.id;
  }
  emptyNote(tbody, "No browser paired yet.");
}

/** The wallet's computers: names and days last seen come from the records. */
async function showDevices(practiceHub) {
  const tbody = $("devices").tBodies[0];
  $("device-add").hidden = practiceHub;
  if (practiceHub) {
    tbody.replaceChildren();
    emptyNote(tbody, "Your computers share one wallet through a hub they all reach: "
      + "this one runs the practice hub on this computer.");
    return;
  }
  let devices = [];
  try {
    ({ devices } = await api("GET", "/devices"));
  } catch (e) {
    tbody.replaceChildren();
    emptyNote(tbody, `Not known now: ${e.message}`);
    return;
  }
  tbody.replaceChildren();
  for (const d of devices) {
    const tr = row(tbody, [
      cell(d.this ? `${d.name} (this computer)` : d.name),
      cell(d.added),
      cell(d.last_seen || "—"),
      cell(d.removed ? `removed ${d.removed}` : "active"),
      d.removed || d.this ? cell("") : button("Remove", async () => {
        await api("DELETE", `/devices/${encodeURIComponent(d.device)}`);
        $("device-code").textContent = `${d.name} removed: the hub refuses it from now on. If it `
          + "was lost or stolen rather than retired, move your balance to a new wallet: it held "
          + "this wallet's key.";
        $("device-code").hidden = false;
      }),
    ]);
    tr.dataset.device = d.device;
  }
  emptyNote(tbody, "This wallet is on this computer only.");
}

$("device-add").addEventListener("click", async () => {
  try {
    const { code } = await api("POST", "/devices/invite", {});
    const { hub } = await api("GET", "/hub");
    $("device-code").textContent = `On the other computer, within 15 minutes: `
      + `mecene devices join ${code} --hub ${hub.url}  — the code works once, and gives `
      + "that computer this wallet: keep it to yourself.";
    $("device-code").hidden = false;
    await showDevices(false);
  } catch (e) {
    notify(e.message);
  }
});

/** Codes waiting for approval (a browser's Mécène panel shows the same code).
 * Asked every 2 s: the person comes here from the panel to approve. */
async function showPending() {
  let pending;
  try {
    ({ pending } = await api("GET", "/pairings"));
  } catch (e) {
    return; // signed out: refresh() says so
  }
  const tbody = $("pending").tBodies[0];
  tbody.replaceChildren();
  for (const p of pending) {
    const actions = document.createElement("td");
    actions.append(
      button("Approve", () => api("POST", "/pairings/approve", { code: p.code })),
      button("Deny", () => api("POST", "/pairings/deny", { code: p.code })),
    );
    const left = `${Math.floor(p.expires_in / 60)}:${String(p.expires_in % 60).padStart(2, "0")}`;
    const tr = row(tbody, [cell(p.code, "code"), cell(p.client), cell(left), actions]);
    tr.dataset.code = p.code;
  }
  $("pairing-panel").hidden = pending.length === 0;
}

async function refresh() {
  let status;
  try {
    status = await api("GET", "/status");
  } catch (e) {
    if (e.status === 401) {
      document.body.dataset.state = "signed-out";
      const command = document.createElement("code");
      command.textContent = "mecene open";
      $("summary").replaceChildren("Signed out: run ", command, " for a new login link.");
      for (const id of ["unlocked", "unlock-panel", "pairing-panel", "lock", "logout"]) {
        $(id).hidden = true;
      }
      return;
    }
    throw e;
  }
  $("unlock-panel").hidden = !status.locked;
  showClock(status.locked ? null : status.clock);
  $("unlocked").hidden = status.locked;
  $("lock").hidden = status.locked;
  $("logout").hidden = false;
  if (status.locked) {
    document.body.dataset.state = "locked";
    $("summary").textContent = "The wallet is locked.";
    return;
  }
  $("summary").textContent = `Balance ${euros(status.balance_cents)}`
    + (status.practice_hub ? " (practice hub on this computer: simulated money)" : "")
    + (status.gift_tokens_cents
      ? `, and ${euros(status.gift_tokens_cents)} in tokens for gifts` : "") + " · "
    + `${monthName(status.month)}: ${euros(status.spend_cents)} of ${euros(status.budget_cents)}`
    + (status.given_cents ? ` + ${euros(status.given_cents)} given` : "");
  await Promise.all([
    showMonth(status), showMonths(status.month), showSubscriptions(), showSettings(),
    showRecords(status.practice_hub), showTransfers(status.month), showCreator(),
    showBrowsers(), showPending(), showDevices(Boolean(status.practice_hub)),
  ]);
  document.body.dataset.state = "ready";
}

/** Whether months close on time: held (the person may confirm the date) or
 * behind (flattrs go into the open month), as the daemon words it. */
function showClock(clock) {
  const state = clock ? clock.state : "ok";
  $("clock-panel").hidden = state === "ok";
  $("clock-panel").dataset.state = state;
  if (state === "ok") return;
  const text = clock.message;
  $("clock-message").textContent = `${text[0].toUpperCase()}${text.slice(1)}.`;
  $("clock-confirm").hidden = state !== "held";
}

$("clock-confirm").addEventListener("click", async () => {
  try {
    await api("POST", "/clock/confirm", {});
    notify("");
    await refresh();
  } catch (e) {
    notify(e.message);
  }
});

$("settings-form").addEventListener("input", () => {
  $("settings-saved").hidden = true;
  $("settings-form").dataset.dirty = "true";
});

$("settings-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const answer = await api("PATCH", "/settings", {
      budget_cents: cents($("budget").value, false),
      min_click_cents: cents($("min-click").value, true),
      cap_cents: cents($("cap").value, true),
      browser_gift_limit_cents: cents($("browser-gifts").value, false),
      private: $("private").checked,
      unlinkable: $("unlinkable").checked,
      charity: $("charity").value.trim() || null,
      backup_dir: $("backup-dir").value.trim() || null,
      backup_keep: Number($("backup-keep").value),
    });
    showBackups(answer.settings, answer.backups);
    notify("");
    $("settings-form").dataset.dirty = "false";
    document.activeElement.blur();
    const saved = $("settings-saved");
    saved.textContent = `Saved at ${new Date().toLocaleTimeString([], {
      hour: "2-digit", minute: "2-digit" })}: a budget of ${euros(cents($("budget").value, false))}`
      + " a month. Months closing from now on are paid "
      + ($("unlinkable").checked ? "as tokens the hub cannot tie to you."
        : "by a settlement that names each creator you paid.");
    saved.hidden = false;
    document.body.dataset.saved = String(Date.now());
  } catch (e) {
    notify(e.message);
  }
  await refresh();
});

let quote = null;
$("deposit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    quote = await api("POST", "/deposits/quote", {
      method: $("deposit-method").value, amount_cents: cents($("deposit-amount").value, false),
    });
    const method = $("deposit-method").selectedOptions[0].textContent;
    $("deposit-quote").textContent = `Deposit ${euros(quote.amount_cents)} by `
      + `${method === "PayPal" ? method : method.toLowerCase()}: fee `
      + `${euros(quote.fee_cents)}, you pay ${euros(quote.total_cents)}.`;
    $("deposit-quote").hidden = false;
    $("deposit-confirm").hidden = false;
    // The fee and Confirm come below the form: brought into view.
    $("deposit-confirm").scrollIntoView({ block: "nearest" });
    notify("");
  } catch (e) {
    notify(e.message);
  }
});

$("deposit-confirm").addEventListener("click", async () => {
  if (!quote) return;
  try {
    const out = await api("POST", "/deposits", {
      id: crypto.randomUUID(), method: quote.method, amount_cents: quote.amount_cents,
      fee_cents: quote.fee_cents,
    });
    $("deposit-quote").textContent = `Deposited. Balance: ${euros(out.balance_cents)}.`;
    $("deposit-confirm").hidden = true;
    $("deposit-amount").value = ""; // not left there to be paid again
    quote = null;
    notify("");
  } catch (e) {
    notify(e.message);
  }
  await refresh();
});

$("unlock-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await api("POST", "/wallet/unlock", { passphrase: $("passphrase").value });
    $("passphrase").value = "";
    notify("");
  } catch (e) {
    notify(e.message);
  }
  await refresh();
});

$("passphrase-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const said = $("passphrase-said");
  said.hidden = false;
  if ($("new-passphrase").value !== $("new-passphrase-again").value) {
    said.dataset.state = "error";
    said.textContent = "The two new passphrases differ: nothing was changed.";
    return;
  }
  said.dataset.state = "working";
  said.textContent = "Changing it (the key derivation takes a moment)…";
  try {
    await api("POST", "/wallet/passphrase", {
      passphrase: $("old-passphrase").value, new_passphrase: $("new-passphrase").value,
    });
    said.dataset.state = "done";
    said.textContent = "Passphrase changed: the wallet opens with the new one from now on. "
      + "Your recovery phrase has not changed.";
  } catch (e) {
    said.dataset.state = "error";
    said.textContent = `${e.message[0].toUpperCase()}${e.message.slice(1)}: nothing was changed.`;
  }
  for (const id of ["old-passphrase", "new-passphrase", "new-passphrase-again"]) $(id).value = "";
});

$("lock").addEventListener("click", async () => {
  await api("POST", "/wallet/lock", {}).catch((e) => notify(e.message));
  await refresh();
});

$("logout").addEventListener("click", async () => {
  await api("POST", "/dashboard/logout", {}).catch(() => {});
  sessionStorage.removeItem("mecene-session");
  await refresh();
});

/** Live: the daemon answers GET /changes once anything it keeps has changed
 * (a flattr from a browser, the hub's new balance, a month closing), and
 * the page shows it then. Left open, it never goes stale. */
async function followChanges() {
  let version = null;
  for (;;) {
    try {
      const since = version === null ? "" : `?since=${version}`;
      const answer = await api("GET", `/changes${since}`);
      if (version !== null && answer.version !== version) {
        await refresh();
        document.body.dataset.live = String(answer.version);
      }
      version = answer.version;
    } catch (e) {
      // Signed out, locked or the daemon stopped: look again in a moment.
      await new Promise((resolve) => { setTimeout(resolve, 3000); });
    }
  }
}

refresh().catch((e) => notify(e.message));
setInterval(showPending, 2000);
followChanges();
