// Amounts as people type them ("12.5" CITY) and as the platform counts them (integer micro-units): the decimal
// text is parsed digit by digit (BigInt), never through a float, so "0.1" is exactly 100000 micro-units.

export const MICRO_PER_UNIT = 1_000_000n;
export const DECIMALS = 6;

export class AmountError extends Error {}

export function parseUnits(text) {
  const typed = String(text).trim();
  const match = /^(\d*)(?:\.(\d*))?$/.exec(typed);
  if (!typed || !match || (match[1] === "" && (match[2] ?? "") === "")) {
    throw new AmountError("Type the amount as a number, with a dot before any decimals: 12.5");
  }
  const [, whole, fraction = ""] = match;
  if (fraction.length > DECIMALS) throw new AmountError("At most 6 decimals: the smallest amount is 0.000001.");
  const micro = BigInt(whole || "0") * MICRO_PER_UNIT + BigInt(fraction.padEnd(DECIMALS, "0"));
  if (micro <= 0n) throw new AmountError("The amount must be more than 0.");
  if (micro > BigInt(Number.MAX_SAFE_INTEGER)) throw new AmountError("That amount is larger than the platform counts.");
  return Number(micro);
}

// Integer micro-units as exact decimal text, no float involved ("2500" -> "0.0025").
export function unitsText(micro) {
  const value = BigInt(micro);
  const sign = value < 0n ? "-" : "";
  const abs = value < 0n ? -value : value;
  const fraction = (abs % MICRO_PER_UNIT).toString().padStart(DECIMALS, "0").replace(/0+$/, "");
  return `${sign}${abs / MICRO_PER_UNIT}${fraction ? `.${fraction}` : ""}`;
}
