// What the rewards worker's reason codes (docs/api.md, "city.reward-decisions.v1") mean, in plain words for
// the person whose reading it was.

const REASONS = {
  "unverified-person": "This wallet was not bound to a person when the reading arrived (or that person already earns with 3 wallets that day). Use “Bind this wallet to me” below: readings after that earn.",
  "no-consent": "You had not allowed the city to use this kind of data at the time the reading was taken. Switch its consent on below: readings taken after that can earn.",
  unattested: "The city pays this kind only when one of its own devices (a recycling station, a transit gate…) confirms it happened, and this reading had no such confirmation.",
  "cap-device-hour": "This device had already earned the most a device may earn in that hour; the rest of this reading's reward was cut.",
  "cap-wallet-day": "This wallet had already earned the most a wallet may earn that day; the rest was cut.",
  "cap-person-day": "You had already earned the most one person may earn that day, across all your wallets and devices; the rest was cut.",
  "stale-sequence": "The device sent this reading out of order (its number was not above the last one): only new readings count.",
  "unknown-kind": "The city's reward policy does not know this kind of reading.",
  "clock-skew": "The reading's time was too far from when the city received it: the device's clock may be wrong.",
  "too-late": "The reading reached the city too long after it was taken (more than a day): the device was offline too long.",
  "impossible-value": "A value of the reading is outside what such a sensor can measure.",
  burst: "The device sent too many readings in a short time.",
  "stuck-sensor": "The device sent the very same values too many times in a row: the sensor may be stuck.",
  outlier: "The reading was far from what other sensors in the same zone measured in that minute.",
  "nothing-to-pay": "The reading was fine, but its rule pays nothing for these values.",
};

export function reasonText(code) {
  return REASONS[code] ?? `The city's reason: ${code}.`;
}

// A problem type of the ledger's transfer refusals, in plain words (the ledger's own detail follows it).
const REFUSALS = {
  "insufficient-funds": "Not enough in your wallet for this payment.",
  "city-outside-community": "CITY is spent only inside the community: this merchant is not a local one.",
  "currency-not-accepted": "This merchant does not take that currency.",
  "merchant-inactive": "This merchant is no longer active.",
  "account-frozen": "One of the two accounts is frozen.",
  "self-transfer": "You cannot pay your own wallet.",
  "aid-holder-aid-only": "That account holds AID and takes nothing else.",
  "aid-merchants-only": "AID is paid only to merchants, not to a person.",
  "merchant-not-verified": "AID is paid only to merchants the city verified, and this one is not verified.",
  "aid-not-allowed": "Your AID may not be spent at this kind of merchant, or it has expired.",
  "insufficient-aid": "Your AID key does not hold enough AID that may be spent at this merchant.",
};

export function refusalText(type) {
  return REFUSALS[type] ?? "";
}
