// The kiosk: a custodial wallet (README "People without a phone") opened with its did and PIN on a shared
// screen. Identity opens the wallet with the PIN for each call; the page keeps the did and the PIN in memory
// only (never in storage, a cookie or the URL) and forgets them, with everything shown, when the person ends
// the session, after an idle time, or when the page is hidden or left: that session, and its idle timer, are
// kiosk-session.js. This module opens it, shows the statement and the notices, and pays; what it tells the
// person is in kiosk-words.js.

import { ApiError, call } from "./api.js";
import { publicKeyFromDid } from "./didkey.js";
import { $, element, fillRows, formatMicro, hideStatus, showStatus } from "./dom.js";
import { hexEncode } from "./encoding.js";
import { clearFields, endSession, forgetWithSession, generation, idleSeconds, session, startSession } from "./kiosk-session.js";
import { GROUPS, plainWords, REFUSALS, WHAT } from "./kiosk-words.js";

const MAX_MICRO = Number.MAX_SAFE_INTEGER;

// The payment being attempted: its fields and the request_id identity keeps it under. A retry of the same
// fields (after no answer, a 503) reuses the id, so identity pays it at most once.
let pending = null;
forgetWithSession(() => {
  pending = null;
});

function retryable(error) {
  return !(error instanceof ApiError) || error.status >= 500;
}

// A decimal amount ("2", "2.5", "0.000001") as micro-units, exactly (no float arithmetic), or null.
function parseAmount(text) {
  const match = /^(\d{1,9})(?:\.(\d{1,6}))?$/.exec(text.trim());
  if (!match) return null;
  const micro = Number(match[1]) * 1_000_000 + Number((match[2] ?? "").padEnd(6, "0"));
  return micro > 0 && micro <= MAX_MICRO ? micro : null;
}

function isWalletId(text) {
  try {
    publicKeyFromDid(text);
    return true;
  } catch {
    return false;
  }
}

function requestId() {
  // getRandomValues works on a plain-http kiosk too (randomUUID needs a secure context).
  return `kiosk-${hexEncode(crypto.getRandomValues(new Uint8Array(16)))}`;
}

function shortId(text) {
  return text.length > 24 ? `${text.slice(0, 16)}…${text.slice(-6)}` : text;
}

function when(rfc3339) {
  const date = new Date(rfc3339);
  return Number.isNaN(date.getTime()) ? rfc3339 : date.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" });
}

// A PIN call to the person's custodial wallet: POST /v1/custodial-wallets/{did}/{what} with the PIN.
function walletCall(open, what, body = {}) {
  return call("identity", `/v1/custodial-wallets/${open.did}/${what}`, { method: "POST", body: { pin: open.pin, ...body } });
}

// ---- showing ----

function showStatement(statement) {
  // CITY and AID always; another currency (CREDIT) when the wallet holds some.
  const balances = Object.entries({ CITY: 0, AID: 0, ...statement.balances }).filter(
    ([currency, amount]) => currency === "CITY" || currency === "AID" || amount !== 0,
  );
  $("#balances").replaceChildren(
    ...balances.map(([currency, amount]) => {
      const figure = element("div", null, { class: "figure", "data-currency": currency });
      figure.append(element("div", currency, { class: "muted" }), element("div", formatMicro(amount, currency), { class: "value" }));
      return figure;
    }),
  );
  $("#aid-holder").textContent = statement.aid_holder;
  const rows = statement.transactions.map((tx) => {
    const amounts = Object.entries(tx.changes)
      .map(([currency, amount]) => `${amount > 0 ? "+" : ""}${formatMicro(amount, currency)}`)
      .join(", ");
    const what = element("span", WHAT[tx.type] ?? tx.type);
    const ledger = element("span", tx.leaf_index === null ? "settled, not in a block yet" : `in block ${tx.block_height}`);
    ledger.append(element("br"), element("code", shortId(tx.tx_id), { title: tx.tx_id }));
    return { tx, cells: [when(tx.settled_at), what, amounts, ledger] };
  });
  fillRows($("#transactions tbody"), rows.map((row) => row.cells));
  [...$("#transactions tbody").rows].forEach((tr, i) => tr.setAttribute("data-tx-id", rows[i].tx.tx_id));
  $("#transactions-empty").hidden = rows.length > 0;
  $("#transactions-more").hidden = !statement.more;
  describeCounterparts(rows, generation);
}

// Who a payment went to or came from, and what the city's transactions were: from the public records (the
// statement has only the amounts). Filled in as the records arrive.
async function describeCounterparts(rows, mine) {
  await Promise.all(
    rows
      .filter(({ tx }) => tx.type === "transfer" || tx.type === "issuer")
      .map(async ({ tx, cells }) => {
        let record;
        try {
          record = await call("ledger", `/v1/transactions/${tx.tx_id}`);
        } catch {
          return; // the plain label stays
        }
        if (mine !== generation || !session) return;
        const what = cells[1];
        if (tx.type === "transfer" && record.transfer) {
          const out = Object.values(tx.changes).some((amount) => amount < 0);
          const other = out ? record.transfer.to : record.transfer.from;
          what.replaceChildren(`${out ? "Payment to" : "Payment from"} `, element("code", shortId(other), { title: other }));
        } else if (tx.type === "issuer" && record.command) {
          const command = record.command;
          if (command.command === "grant") {
            what.textContent = `AID granted by the city, for ${command.categories.join(", ")}, until ${when(command.expires_at)}`;
          } else if (command.command === "mint") {
            what.textContent = "Issued to you by the city";
          } else if (command.command === "revoke") {
            what.textContent = "AID grant withdrawn by the city";
          }
        }
      }),
  );
}

function showNotices(inbox) {
  const list = $("#notices");
  if (inbox.notices.length === 0) {
    list.replaceChildren(element("li", "No notices for you right now.", { class: "muted" }));
  } else {
    list.replaceChildren(
      ...inbox.notices.map((notice) => {
        const item = element("li", null, { class: "notice" });
        const about = [`Posted ${when(notice.posted_at)}`];
        if (notice.group) {
          const [kind] = Object.keys(notice.group);
          if (GROUPS[kind]) about.push(GROUPS[kind]);
        }
        if (notice.expires_at) about.push(`until ${when(notice.expires_at)}`);
        item.append(element("h3", notice.title), element("p", notice.body, { class: "notice-body" }), element("p", about.join(" · "), { class: "muted" }));
        return item;
      }),
    );
  }
  if (inbox.unresolved?.length) showStatus($("#notices-status"), "info", "Some notices for AID holders could not be checked just now; refresh to try again.");
  else hideStatus($("#notices-status"));
}

// ---- reading ----

async function refreshStatement(open, mine) {
  try {
    const statement = await walletCall(open, "statement");
    if (mine !== generation) return;
    showStatement(statement);
    hideStatus($("#statement-status"));
  } catch (error) {
    if (mine !== generation) return;
    handleSessionError(error, $("#statement-status"));
  }
}

async function refreshNotices(open, mine) {
  try {
    const inbox = await walletCall(open, "notices");
    if (mine !== generation) return;
    showNotices(inbox);
  } catch (error) {
    if (mine !== generation) return;
    handleSessionError(error, $("#notices-status"));
  }
}

function refresh() {
  if (!session) return Promise.resolve();
  const open = session;
  const mine = generation;
  return Promise.all([refreshStatement(open, mine), refreshNotices(open, mine)]);
}

// A PIN answer in an open session (the PIN was reset meanwhile, or the wallet locked): the session is over.
function handleSessionError(error, statusNode) {
  if (error instanceof ApiError && (error.type === "wrong-pin" || error.type === "wallet-locked")) {
    endSession(plainWords(error));
    return;
  }
  showStatus(statusNode, "bad", plainWords(error));
}

// ---- opening, paying ----

async function openSession(did, pin) {
  const status = $("#kiosk-status");
  if (!isWalletId(did)) {
    showStatus(status, "bad", REFUSALS["invalid-did"]);
    $("#did").focus();
    return;
  }
  if (!/^[0-9]{4,12}$/.test(pin)) {
    showStatus(status, "bad", REFUSALS["invalid-pin"]);
    $("#pin").focus();
    return;
  }
  const mine = generation;
  const open = { did, pin, aidHolder: "", idleSeconds: idleSeconds() };
  const button = $("#open-button");
  button.disabled = true;
  showStatus(status, "info", "Opening your wallet…");
  let statement;
  try {
    statement = await walletCall(open, "statement");
  } catch (error) {
    open.pin = "";
    if (mine !== generation) return;
    showStatus(status, "bad", plainWords(error));
    $("#pin").value = "";
    $("#pin").focus();
    return;
  } finally {
    button.disabled = false;
  }
  if (mine !== generation) {
    open.pin = ""; // the page was hidden or left meanwhile: this answer is not shown
    return;
  }
  open.aidHolder = statement.aid_holder;
  startSession(open);
  clearFields();
  hideStatus(status);
  $("#open").hidden = true;
  $("#session-did").textContent = did;
  $("#session-bar").hidden = false;
  $("#session").hidden = false;
  showStatement(statement);
  $("#balance-title").focus();
  refreshNotices(open, generation);
}

async function pay() {
  if (!session) return;
  const status = $("#pay-status");
  const to = $("#pay-to").value.trim();
  const amount = parseAmount($("#pay-amount").value);
  const currency = $("#pay-currency").value;
  const memo = $("#pay-memo").value.trim();
  if (!isWalletId(to)) {
    showStatus(status, "bad", "Pay to: that is not a wallet id. It starts with did:key:z6Mk.");
    $("#pay-to").focus();
    return;
  }
  if (amount === null) {
    showStatus(status, "bad", "Amount: a number above 0 with at most 6 decimals, for example 2.50.");
    $("#pay-amount").focus();
    return;
  }
  const fields = { to, amount, currency, ...(memo ? { memo } : {}) };
  const key = JSON.stringify(fields);
  if (!pending || pending.key !== key) pending = { key, requestId: requestId() };
  const attempt = pending;
  const open = session;
  const mine = generation;
  const button = $("#pay-button");
  button.disabled = true;
  showStatus(status, "info", "Paying…");
  try {
    const receipt = await walletCall(open, "transfers", { ...fields, request_id: attempt.requestId });
    if (mine !== generation) return;
    pending = null;
    for (const id of ["#pay-to", "#pay-amount", "#pay-memo"]) $(id).value = "";
    showStatus(status, "good", `Paid ${formatMicro(amount, currency)} to ${shortId(to)}. Ledger transaction ${shortId(receipt.tx_id)}.`);
    await refreshStatement(open, mine);
  } catch (error) {
    if (mine !== generation) return;
    if (!retryable(error) && pending === attempt) pending = null;
    if (error instanceof ApiError && (error.type === "wrong-pin" || error.type === "wallet-locked")) {
      endSession(plainWords(error));
      return;
    }
    showStatus(status, "bad", plainWords(error, retryable(error)));
  } finally {
    button.disabled = false;
  }
}

// ---- wiring ----

$("#open-form").addEventListener("submit", (event) => {
  event.preventDefault();
  openSession($("#did").value.trim(), $("#pin").value);
});
$("#pay-form").addEventListener("submit", (event) => {
  event.preventDefault();
  pay();
});
$("#refresh").addEventListener("click", () => refresh());
