// The wallet's money: its balances, history and reward decisions, and the AID its AID holder key holds (signed
// reads, each by the key whose account it is), read again every little while; and paying a person or a
// merchant (the transfer signed here: AID by the AID holder key, anything else by the wallet's).

import { ApiError, call } from "./api.js";
import { publicKeyFromDid } from "./didkey.js";
import { $, element, fillRows, formatMicro, showStatus } from "./dom.js";
import { showAidBalance } from "./wallet-aid.js";
import { busy, kindTitle, said, short, wallet, when } from "./wallet-page.js";
import { signedGet, transferBody } from "./wallet-requests.js";
import { AmountError, parseUnits, unitsText } from "./wallet-units.js";
import { reasonText, refusalText } from "./wallet-words.js";

const REFRESH_EVERY_MS = 20_000;
const HISTORY_PAGE = 20;
const DECISIONS_PAGE = 20;

let historyBefore = null;
let refreshing = null;
let refreshAgain = false;

// Balances, history, decisions and AID read again; a call while a read is under way runs it once more after it
// (what was asked may have changed in between: a payment just made), and its promise ends after that one.
export function refreshMoney() {
  if (!wallet) return Promise.resolve();
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      await readMoney(wallet);
    } while (refreshAgain && wallet);
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

async function readMoney(reader) {
  const { did, aid } = reader;
  const [account, history, decisions, aidAccount] = await Promise.allSettled([
    signedGet(reader, "ledger", `/v1/accounts/${did}`),
    signedGet(reader, "ledger", `/v1/accounts/${did}/transactions?limit=${HISTORY_PAGE}`),
    signedGet(reader, "ingest", `/v1/wallets/${did}/decisions?limit=${DECISIONS_PAGE}`),
    aid ? signedGet(aid, "ledger", `/v1/accounts/${aid.did}`) : null, // read by the AID holder key itself
  ]);
  if (wallet !== reader) return; // forgotten meanwhile
  const failed = [account, history, decisions, aidAccount].filter((r) => r.status === "rejected").map((r) => said(r.reason));
  if (failed.length) showStatus($("#money-status"), "bad", [...new Set(failed)].join(" "));
  else $("#money-status").hidden = true;
  if (account.status === "fulfilled") showBalances(account.value.balances);
  if (history.status === "fulfilled") showHistory(history.value, false);
  if (decisions.status === "fulfilled") showDecisions(decisions.value.decisions);
  if (aidAccount.status === "fulfilled" && aidAccount.value) showAidBalance(aidAccount.value.balances.AID ?? 0);
  $("#refreshed").textContent = `Updated ${new Date().toLocaleTimeString()}.`;
}

// The wallet's own balances. Its AID is held by its AID holder key (shown under AID): the wallet's own AID
// (none, unless the city granted AID to the wallet's id itself) is shown only when it holds some.
function showBalances(balances) {
  const shown = Object.entries(balances).filter(([currency, micro]) => currency !== "AID" || micro !== 0);
  $("#balances").replaceChildren(
    ...shown.map(([currency, micro]) => {
      const figure = element("div", null, { class: "figure" });
      figure.append(
        element("div", currency, { class: "muted" }),
        element("div", formatMicro(micro, currency), { class: "value", id: `balance-${currency}`, "data-micro": String(micro) }),
      );
      return figure;
    }),
  );
}

function txWords(type, changes) {
  const received = Object.values(changes).some((amount) => amount > 0);
  if (type === "reward") return "Reward";
  if (type === "transfer") return received ? "Received" : "Payment";
  if (type === "issuer") return "From the city";
  if (type === "aid-expiry") return "AID expired";
  return type;
}

function txRow(tx) {
  const changes = Object.entries(tx.changes).map(([currency, amount]) => `${amount > 0 ? "+" : ""}${formatMicro(amount, currency)}`);
  const link = element("a", short(tx.tx_id), { href: `/explorer.html#tx=${tx.tx_id}`, class: "mono", "aria-label": `Verify transaction ${tx.tx_id} in the explorer` });
  const where = element("div", tx.leaf_index === null ? "not sealed yet" : `block ${tx.block_height}`, { class: "muted" });
  const cell = element("div");
  cell.append(link, where);
  return [when(tx.settled_at), txWords(tx.type, tx.changes), changes.join(", "), cell];
}

let historyRows = [];

// The first page again (a refresh) keeps the older pages the person opened; a further page is appended.
function showHistory(page, append) {
  if (append) {
    historyRows = [...historyRows, ...page.transactions];
    historyBefore = page.next_before;
  } else {
    const oldest = page.transactions.at(-1)?.seq;
    const older = oldest === undefined ? [] : historyRows.filter((tx) => tx.seq < oldest);
    historyRows = [...page.transactions, ...older];
    if (!older.length) historyBefore = page.next_before;
  }
  fillRows($("#history tbody"), historyRows.map(txRow));
  $("#history-empty").hidden = historyRows.length > 0;
  $("#history-more").hidden = historyBefore === null || historyBefore === undefined;
}

$("#history-more").addEventListener("click", async (event) => {
  const { did } = wallet;
  const button = event.currentTarget;
  busy(button, true);
  try {
    showHistory(await signedGet(wallet, "ledger", `/v1/accounts/${did}/transactions?limit=${HISTORY_PAGE}&before=${historyBefore}`), true);
  } catch (error) {
    showStatus($("#money-status"), "bad", said(error));
  } finally {
    busy(button, false);
  }
});

function decisionItem(decision) {
  const earned = decision.rewards.reduce((sum, reward) => sum + reward.amount, 0);
  const item = element("li", null, { "data-outcome": decision.outcome, "data-earned": String(earned) });
  const heading = element("p", null, { class: "wallet-entry-head" });
  heading.append(element("strong", `${kindTitle(decision.kind)} reading`), ` taken ${when(decision.ts)}, device `, element("code", short(decision.device_id, 20)));
  item.append(heading);
  if (decision.outcome === "rewarded") {
    const line = element("p", `Earned ${formatMicro(earned, "CITY")}`, { class: "wallet-earned" });
    item.append(line);
    const rules = element("ul");
    for (const reward of decision.rewards) rules.append(element("li", `${reward.rule}: ${formatMicro(reward.amount, "CITY")}`));
    item.append(rules);
  } else {
    item.append(element("p", "Earned nothing.", { class: "wallet-unearned" }));
  }
  if (decision.reasons?.length) {
    const why = element("ul", null, { class: "wallet-reasons" });
    for (const reason of decision.reasons) {
      const entry = element("li", reasonText(reason.code), { "data-reason": reason.code });
      const detail = [reason.rule ? `rule ${reason.rule}` : "", reason.detail ?? ""].filter(Boolean).join(": ");
      if (detail) entry.append(element("span", ` (${detail})`, { class: "muted" }));
      why.append(entry);
    }
    item.append(element("p", decision.outcome === "rewarded" ? "Less than the rule pays, because:" : "Why:"), why);
  }
  return item;
}

function showDecisions(decisions) {
  $("#decisions").replaceChildren(...decisions.map(decisionItem));
  $("#rewards-empty").hidden = decisions.length > 0;
}

$("#refresh").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  busy(button, true);
  try {
    await refreshMoney();
  } finally {
    busy(button, false);
  }
});

setInterval(() => {
  if (wallet && document.visibilityState === "visible") refreshMoney();
}, REFRESH_EVERY_MS);

// Paying: the transfer signed here, with the ledger's next nonce for the key that pays and a committed memo.
// AID is paid by the AID holder key, from its own account and with its own nonces; anything else by the wallet.

let pending = null;

const payer = (currency) => (currency === "AID" ? wallet.aid : wallet);
const fromWords = (currency) => (currency === "AID" ? " from your AID key" : "");

$("#pay-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const status = $("#pay-status");
  const to = $("#pay-to").value.trim();
  try {
    publicKeyFromDid(to);
  } catch {
    showStatus(status, "bad", "That is not a wallet id: it starts with did:key:z6Mk.");
    $("#pay-to").focus();
    return;
  }
  if (to === wallet.did) {
    showStatus(status, "bad", "That is this wallet's own id.");
    $("#pay-to").focus();
    return;
  }
  if (to === wallet.aid?.did) {
    showStatus(status, "bad", "That is this wallet's own AID key.");
    $("#pay-to").focus();
    return;
  }
  let amount;
  try {
    amount = parseUnits($("#pay-amount").value);
  } catch (error) {
    showStatus(status, "bad", error instanceof AmountError ? error.message : String(error));
    $("#pay-amount").focus();
    return;
  }
  const currency = $("#pay-currency").value;
  if (!payer(currency)) {
    showStatus(status, "bad", "This wallet has no AID key yet: make it under AID first.");
    $("#pay-currency").focus();
    return;
  }
  const memo = $("#pay-memo").value;
  if ([...memo].length > 280) {
    showStatus(status, "bad", "A memo is at most 280 characters.");
    $("#pay-memo").focus();
    return;
  }
  pending = { to, amount, currency, memo };
  status.hidden = true;
  $("#pay-summary").textContent = `Pay ${unitsText(amount)} ${currency}${fromWords(currency)} to ${to}${memo ? `, with the memo “${memo}”` : ""}?`;
  $("#pay-confirm").hidden = false;
  $("#pay-yes").focus();
});

$("#pay-no").addEventListener("click", () => {
  pending = null;
  $("#pay-confirm").hidden = true;
  $("#pay-form button[type=submit]").focus();
});

// The payment signed once (with the ledger's next nonce) and sent; sent again as the very same signed object
// when the ledger did not answer, which it answers with the original receipt if the first one arrived: a retry
// never pays twice. Signed again, with the next nonce, only when the ledger says the nonce was used meanwhile
// (another tab or device of this wallet paid).
async function pay(payment) {
  const from = payer(payment.currency);
  for (let attempt = 0; ; attempt += 1) {
    if (!payment.body) {
      const { next_nonce: nonce } = await signedGet(from, "ledger", `/v1/accounts/${from.did}/nonce`);
      payment.body = await transferBody(from, { ...payment, nonce });
    }
    try {
      return await call("ledger", "/v1/transfers", { method: "POST", body: payment.body });
    } catch (error) {
      const refused = error instanceof ApiError && error.status < 500;
      if (refused) payment.body = null; // nothing was paid: a new attempt signs anew
      if (attempt === 0 && refused && error.type === "stale-nonce") continue;
      throw error;
    }
  }
}

const sealedWords = (receipt) =>
  receipt.block_height === null || receipt.block_height === undefined ? "it will be sealed into the next block" : `sealed in block ${receipt.block_height}`;

$("#pay-yes").addEventListener("click", async (event) => {
  if (!pending) return;
  const payment = pending;
  const status = $("#pay-status");
  const button = event.currentTarget;
  busy(button, true);
  showStatus(status, "info", "Signing and sending…");
  try {
    const receipt = await pay(payment);
    pending = null;
    $("#pay-confirm").hidden = true;
    $("#pay-form").reset();
    showStatus(status, "good", `Paid ${unitsText(payment.amount)} ${payment.currency}${fromWords(payment.currency)}: transaction ${receipt.tx_id} (${receipt.status}; ${sealedWords(receipt)}).`);
    refreshMoney();
  } catch (error) {
    if (payment.body) {
      // No answer: the payment may or may not have arrived. The same signed payment can be sent again.
      showStatus(status, "bad", `No answer from the ledger (${said(error)}). Confirm again to send the very same signed payment: it cannot pay twice.`);
    } else {
      pending = null;
      $("#pay-confirm").hidden = true;
      const plain = error instanceof ApiError ? refusalText(error.type) : "";
      showStatus(status, "bad", `Not paid. ${plain ? `${plain} ` : ""}${error instanceof ApiError ? `The ledger says: ${error.message}` : said(error)}`);
    }
  } finally {
    busy(button, false);
    if (document.activeElement === document.body) $("#pay-form button[type=submit]").focus();
  }
});
