// What the wallet page's sections share: the wallet open on this page (wallet.js sets it as the wallet is
// created, restored, opened or forgotten), the names of the city's reading kinds, and small helpers for what
// the sections show.

import { ApiError, call, explain } from "./api.js";

// The open wallet (wallet-vault.js), or null. Read as a live binding: `setWallet` is the only way to change it.
export let wallet = null;

export function setWallet(opened) {
  wallet = opened;
}

export let kinds = {}; // kind -> {title, consent_category}

export const short = (text, n = 12) => (text.length > n + 1 ? `${text.slice(0, n)}…` : text);
export const when = (rfc3339) => (rfc3339 ? new Date(rfc3339).toLocaleString() : "");
export const said = (error) => (error instanceof ApiError ? explain(error) : (error?.message ?? String(error)));

// A button disabled while its work runs; a keyboard user's focus, lost when it was disabled, comes back to it.
export function busy(button, on) {
  if (on) {
    button.dataset.hadFocus = String(document.activeElement === button);
    button.setAttribute("aria-busy", "true");
    button.disabled = true;
    return;
  }
  button.disabled = false;
  button.removeAttribute("aria-busy");
  const lost = document.activeElement === null || document.activeElement === document.body;
  if (button.dataset.hadFocus === "true" && lost && button.offsetParent !== null) button.focus();
}

// The city's reading kinds, read once: their names for the decisions, consents and devices that name them.
export async function loadKinds() {
  if (Object.keys(kinds).length) return;
  const answer = await call("ingest", "/v1/kinds");
  kinds = Object.fromEntries(answer.kinds.map((kind) => [kind.kind, kind]));
}

// A kind's short name: its title up to any colon ("Air quality: particulate matter..." -> "Air quality").
export function kindTitle(kind) {
  const title = kinds[kind]?.title ?? `${kind[0].toUpperCase()}${kind.slice(1).replaceAll("_", " ")}`;
  return title.split(":")[0];
}
