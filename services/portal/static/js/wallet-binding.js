// Binding: a presentation of the person's resident credential, disclosing nothing, signed here.

import { call } from "./api.js";
import { $, showStatus } from "./dom.js";
import { busy, said, short, wallet, when } from "./wallet-page.js";
import { bindingRequest, InputError } from "./wallet-requests.js";
import { saveWallet } from "./wallet-vault.js";

export function showBinding() {
  const binding = wallet.binding;
  $("#binding-state").textContent = binding
    ? `Bound to a person (pseudonym ${short(binding.person, 12)}) since ${when(binding.bound_at)}, until ${when(binding.expires_at)}.`
    : "Not bound to a person on this device's record.";
}

$("#bind-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = $("#bind-status");
  const button = event.submitter ?? $("#bind-form button");
  busy(button, true);
  try {
    const { request } = await bindingRequest(wallet, $("#credential").value);
    const answer = await call("identity", "/v1/bindings", { method: "POST", body: request });
    const { person, bound_at: boundAt, expires_at: expiresAt } = answer.binding;
    wallet.binding = { person, bound_at: boundAt, expires_at: expiresAt };
    await saveWallet(wallet);
    showBinding();
    $("#bind-form").reset();
    showStatus(status, "good", "This wallet is bound to you: its readings earn rewards from now on. The city saw that you hold a resident credential, and nothing of what it says.");
  } catch (error) {
    showStatus(status, "bad", `Not bound. ${error instanceof InputError ? error.message : said(error)}`);
  } finally {
    busy(button, false);
  }
});
