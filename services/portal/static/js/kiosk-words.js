// What the kiosk tells a person, in plain words: what a transaction was, whom a group notice is to, and the
// ledger's and identity's refusals.

import { ApiError } from "./api.js";

export const WHAT = {
  transfer: "Payment",
  reward: "Reward",
  issuer: "From the city",
  "aid-expiry": "AID expired",
};

export const GROUPS = {
  custody: "to everyone whose wallet the city keeps",
  credential: "to every resident with a city credential",
  aid_zone: "to AID holders in your area",
};

// The ledger's and identity's refusals, in plain words.
export const REFUSALS = {
  "insufficient-funds": "There is not enough money in your wallet for this payment.",
  "insufficient-aid": "Your AID that can be spent at this shop does not cover this amount.",
  "aid-not-allowed": "Your AID cannot be spent at this kind of shop, or it has expired.",
  "aid-merchants-only": "AID can be paid only to shops, not to a person.",
  "merchant-not-verified": "AID can be paid only at shops the city has verified; this one is not verified.",
  "city-outside-community": "CITY can be paid to people and to locally owned shops, not to a chain store.",
  "currency-not-accepted": "This shop does not take this currency.",
  "merchant-inactive": "This shop has closed.",
  "account-frozen": "Payments from or to this account are stopped by the city. A caseworker can tell you more.",
  "self-transfer": "You cannot pay yourself.",
  "aid-holder-aid-only": "That is an AID key, which takes only AID: to pay CITY, use the person's wallet id.",
  "request-id-reused": "This payment changed while it was being sent. Check it and press Pay again.",
  "invalid-pin": "A PIN is 4 to 12 digits.",
  "invalid-did": "That is not a wallet id. It starts with did:key:z6Mk.",
};

// Plain words for a failed call; `paying` adds what a retry of a payment does.
export function plainWords(error, paying = false) {
  if (!(error instanceof ApiError)) {
    const words = "This screen could not reach the city's services.";
    return paying ? `${words} Press Pay again: the same payment is never paid twice.` : `${words} Try again.`;
  }
  const problem = error.problem;
  if (error.type === "wrong-pin") {
    const left = problem.attempts_left;
    const tries = left === 1 ? "1 more try" : `${left} more tries`;
    return `Wrong PIN, or a wallet id the city keeps no wallet for. ${tries} before it locks for a while.`;
  }
  if (error.type === "wallet-locked") {
    const until = problem.locked_until ? new Date(problem.locked_until) : null;
    const when = until ? `until ${until.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" })}` : "for a while";
    return `Too many wrong PINs: this wallet is locked ${when}. A caseworker can reset a forgotten PIN.`;
  }
  if (error.status === 503 || error.status === 502 || error.status === 504) {
    const seconds = error.retryAfter;
    const wait = seconds ? `in ${seconds} second${seconds === "1" ? "" : "s"}` : "in a moment";
    const who = error.type === "ledger-unavailable" ? "The ledger did not answer" : "The city's service is busy";
    return paying
      ? `${who}. Press Pay again ${wait}: it is the same payment, never paid twice.`
      : `${who}. Try again ${wait}.`;
  }
  if (REFUSALS[error.type]) return REFUSALS[error.type];
  if (error.status === 422) return `That was not accepted: ${error.message}`;
  return `Not done: ${error.message}`;
}
