// The wallet's AID holder key (wallet-vault.js): its did, which the person gives the city when they apply for
// aid, and the AID it holds (read by wallet-money.js, which also pays AID from it). A wallet kept here from
// before it had an AID holder key gets one with its backup's passphrase.

import { $, formatMicro, showStatus } from "./dom.js";
import { busy, said, wallet } from "./wallet-page.js";
import { addAidKey, BackupError } from "./wallet-vault.js";

export function showAidKey() {
  const { aid } = wallet;
  $("#aid-key").hidden = !aid;
  $("#aid-key-form").hidden = Boolean(aid);
  $("#aid-holder").textContent = aid ? aid.did : "";
  const balance = $("#aid-balance");
  balance.textContent = "";
  delete balance.dataset.micro;
}

export function showAidBalance(micro) {
  const balance = $("#aid-balance");
  balance.textContent = formatMicro(micro, "AID");
  balance.dataset.micro = String(micro);
}

$("#copy-aid").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(wallet.aid.did);
    showStatus($("#aid-status"), "info", "Your AID key is copied.");
  } catch {
    showStatus($("#aid-status"), "info", "Copying is not allowed here: select the AID key above and copy it.");
  }
});

$("#aid-key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = $("#aid-status");
  const button = event.submitter ?? $("#aid-key-form button");
  busy(button, true);
  showStatus(status, "info", "Opening your backup and making your AID key…");
  try {
    await addAidKey(wallet, $("#aid-passphrase").value);
    $("#aid-key-form").reset();
    showAidKey();
    showAidBalance(0); // a key just made holds nothing
    showStatus(status, "good", "Your AID key is made, and added to your backup: download the backup again now, so that it keeps the key.");
  } catch (error) {
    showStatus(status, "bad", error instanceof BackupError ? error.message : `No AID key was made: ${said(error)}`);
    $("#aid-passphrase").focus();
  } finally {
    busy(button, false);
  }
});
