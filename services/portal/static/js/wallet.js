// The citizen's wallet page: keys held in this browser (wallet-vault.js: the wallet's, and its AID holder
// key's), the wallet's balances, history and reward decisions (signed reads), its AID, payments, consents with
// their receipts, notices, devices, and the binding of the wallet to its person. Every text a service returns
// is set as text (dom.js), never as HTML.
//
// This module sets the wallet up (create, restore, back up, forget; its registration with identity) and
// starts the page; each section is a module of its own: wallet-money.js (balances, history, decisions, pay),
// wallet-aid.js (the AID holder key), wallet-consents.js (consents, receipts, anchors), wallet-notices.js,
// wallet-devices.js, wallet-binding.js. What they share (the open wallet, the kinds' names, small helpers) is
// wallet-page.js.

import { $, downloadText, showStatus } from "./dom.js";
import { showAidKey } from "./wallet-aid.js";
import { showBinding } from "./wallet-binding.js";
import { loadConsents } from "./wallet-consents.js";
import { loadDevices } from "./wallet-devices.js";
import { refreshMoney } from "./wallet-money.js";
import { loadNotices } from "./wallet-notices.js";
import { busy, loadKinds, said, setWallet, wallet } from "./wallet-page.js";
import { registerIdentity } from "./wallet-requests.js";
import { BackupError, backupFile, checkPassphrase, createWallet, forgetWallet, loadWallet, restoreWallet, saveWallet } from "./wallet-vault.js";

// Setting up: create, restore, forget.

function show() {
  const none = wallet === null;
  $("#create-section").hidden = !none;
  $("#restore-section").hidden = !none;
  $("#dashboard").hidden = none;
  if (none) {
    showStatus($("#wallet-status"), "info", "No wallet on this device yet: create one, or restore yours from its backup.");
    return;
  }
  showStatus($("#wallet-status"), "good", "Your wallet is open on this device.");
  $("#did").textContent = wallet.did;
  showAidKey();
  $("#history tbody").replaceChildren();
  $("#decisions").replaceChildren();
  $("#consents").replaceChildren();
  $("#notices").replaceChildren();
  showBinding();
  ensureRegistered();
  loadNotices();
  // The kinds' names first, for the decisions, consents and devices that name them (a failure shows in consents).
  loadKinds()
    .catch(() => {})
    .then(() => {
      refreshMoney();
      loadConsents();
      loadDevices();
    });
}

$("#create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = $("#create-status");
  const button = event.submitter ?? $("#create-form button");
  try {
    checkPassphrase($("#new-passphrase").value, $("#new-passphrase-again").value);
  } catch (error) {
    showStatus(status, "bad", error.message);
    $("#new-passphrase").focus();
    return;
  }
  busy(button, true);
  showStatus(status, "info", "Making your keys and encrypting their backup…");
  try {
    setWallet(await createWallet($("#new-passphrase").value));
    $("#create-form").reset();
    status.hidden = true;
    show();
    showStatus($("#wallet-status"), "good", "Your wallet is ready. Download its backup now and keep it somewhere safe.");
    $("#download-backup").focus();
  } catch (error) {
    showStatus(status, "bad", error instanceof BackupError ? error.message : `The wallet could not be made: ${error.message}`);
  } finally {
    busy(button, false);
  }
});

$("#restore-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = $("#restore-status");
  const button = event.submitter ?? $("#restore-form button");
  const file = $("#backup-file").files[0];
  const text = file ? await file.text() : $("#backup-text").value.trim();
  if (!text) {
    showStatus(status, "bad", "Choose your backup file, or paste its text.");
    $("#backup-file").focus();
    return;
  }
  busy(button, true);
  showStatus(status, "info", "Opening the backup…");
  try {
    const { wallet: restored, newAidKey } = await restoreWallet(text, $("#restore-passphrase").value);
    setWallet(restored);
    $("#restore-form").reset();
    status.hidden = true;
    show();
    if (newAidKey) {
      // A backup of version 1, from before wallets had an AID holder key (wallet-vault.js).
      showStatus(
        $("#wallet-status"),
        "warn",
        "Your wallet is restored on this device. Its backup was made before wallets had an AID key, so a new AID key was made for it: download the backup again now, so that it keeps the new key.",
      );
    } else {
      showStatus($("#wallet-status"), "good", "Your wallet is restored on this device.");
    }
  } catch (error) {
    showStatus(status, "bad", error instanceof BackupError ? error.message : `The backup could not be restored: ${error.message}`);
    $("#restore-passphrase").focus();
  } finally {
    busy(button, false);
  }
});

$("#download-backup").addEventListener("click", () => {
  const { name, text } = backupFile(wallet);
  downloadText(name, text, "application/json");
  showStatus($("#identity-status"), "info", `Backup downloaded as ${name}. It opens only with your passphrase.`);
});

$("#copy-did").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(wallet.did);
    showStatus($("#identity-status"), "info", "Your wallet's id is copied.");
  } catch {
    showStatus($("#identity-status"), "info", "Copying is not allowed here: select the id above and copy it.");
  }
});

$("#forget").addEventListener("click", () => {
  $("#forget-confirm").hidden = false;
  $("#forget-no").focus();
});
$("#forget-no").addEventListener("click", () => {
  $("#forget-confirm").hidden = true;
  $("#forget").focus();
});
$("#forget-yes").addEventListener("click", async () => {
  await forgetWallet();
  setWallet(null);
  $("#forget-confirm").hidden = true;
  show();
  showStatus($("#wallet-status"), "info", "This wallet is forgotten on this device. Restore it from its backup to use it here again.");
});

// Identity: the did registered once, so the city can issue it a credential and send it notices.

async function ensureRegistered() {
  if (wallet.registered) return;
  const status = $("#identity-status");
  try {
    await registerIdentity(wallet);
    wallet.registered = true;
    await saveWallet(wallet);
    showStatus(status, "good", "Registered with the city's identity service.");
  } catch (error) {
    showStatus(status, "bad", `Not registered with the city's identity service yet (tried again on your next visit): ${said(error)}`);
  }
}

// Start.

async function supportsEd25519() {
  try {
    await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    return true;
  } catch {
    return false;
  }
}

if (!globalThis.crypto?.subtle || !(await supportsEd25519())) {
  showStatus($("#wallet-status"), "bad", "This browser cannot hold a wallet: it has no Ed25519 signatures (WebCrypto). Use a current browser.");
} else {
  try {
    setWallet(await loadWallet());
    show();
  } catch (error) {
    showStatus($("#wallet-status"), "bad", `This browser cannot keep a wallet (its storage is off, perhaps in a private window): ${error.message}`);
  }
}
