// Consents: one switch per category of the city's reading kinds, each change signed here; the city's
// receipt, checked, and where it is anchored on the chain.

import { ApiError, call, proofOnceSealed } from "./api.js";
import { verifyKey } from "./didkey.js";
import { $, element, showStatus } from "./dom.js";
import { b64urlDecode, hexDecode } from "./encoding.js";
import { canonicalBytes, without } from "./jcs.js";
import { leafHash, ProofError, verifyInclusion, verifyTransaction } from "./merkle.js";
import { kinds, kindTitle, loadKinds, said, short, wallet, when } from "./wallet-page.js";
import { consentChange, objectId, selfRequest } from "./wallet-requests.js";

const ANCHOR_RECHECKS = 12;
const ANCHOR_RECHECK_MS = 5_000;

function categories() {
  const byCategory = {};
  for (const kind of Object.values(kinds)) (byCategory[kind.consent_category] ??= []).push(kindTitle(kind.kind));
  return Object.entries(byCategory).sort(([a], [b]) => a.localeCompare(b));
}

const categoryTitle = (category) => `${category[0].toUpperCase()}${category.slice(1)} data`;

export async function loadConsents() {
  const status = $("#consents-status");
  try {
    await loadKinds();
    const answer = await selfRequest(wallet, "identity", "/v1/consents/query", "list-consents");
    const mine = Object.fromEntries(answer.consents.filter((c) => c.grantee === "city").map((c) => [c.category, c]));
    $("#consents").replaceChildren(...categories().map(([category, titles]) => consentRow(category, titles, mine[category])));
    status.hidden = true;
  } catch (error) {
    showStatus(status, "bad", `Your consents could not be read: ${said(error)}`);
  }
}

function consentRow(category, titles, consent) {
  const id = `consent-${category}`;
  const row = element("div", null, { class: "wallet-switch" });
  const box = element("input", null, { type: "checkbox", role: "switch", id, "aria-describedby": `${id}-what ${id}-receipt` });
  box.checked = consent?.status === "granted";
  const label = element("label", categoryTitle(category), { for: id });
  const what = element("p", `${titles.join(", ")}: the city may use these readings, and rewards them.`, { id: `${id}-what`, class: "wallet-hint" });
  const receipt = element("div", null, { id: `${id}-receipt`, class: "wallet-receipt" });
  const line = element("div", null, { class: "wallet-switch-line" });
  line.append(box, label);
  row.append(line, what, receipt);
  if (consent) showReceipt(receipt, consent.receipt);
  else receipt.textContent = "Never granted.";
  box.addEventListener("change", () => changeConsent(box, category, titles, receipt));
  return row;
}

async function changeConsent(box, category, titles, receiptNode) {
  const status = $("#consents-status");
  const grant = box.checked;
  const hadFocus = document.activeElement === box;
  box.disabled = true;
  try {
    const change = await consentChange(wallet, category, grant, `Rewards for my ${category} data (${titles.join(", ")})`);
    const answer = await call("identity", "/v1/consents", { method: "POST", body: change });
    showStatus(status, "good", `${categoryTitle(category)}: ${grant ? "allowed" : "no longer allowed"}. The city's signed receipt is below the switch.`);
    showReceipt(receiptNode, answer.receipt, answer.receipt_id);
  } catch (error) {
    box.checked = !grant;
    showStatus(status, "bad", `${categoryTitle(category)}: not changed. ${said(error)}`);
  } finally {
    box.disabled = false;
    if (hadFocus && document.activeElement === document.body) box.focus();
  }
}

async function showReceipt(node, receipt, receiptId) {
  const id = receiptId ?? (await objectId(receipt));
  const words = receipt.status === "granted" ? "Allowed" : "Not allowed";
  const summary = element("p", `${words} since ${when(receipt.changed_at)}${receipt.until ? `, until ${when(receipt.until)}` : ""}. Receipt `);
  summary.append(element("code", short(id, 16)), ` signed by the city (${short(receipt.issuer, 20)})`);
  const signed = await receiptSigned(receipt);
  summary.append(signed ? ": signature checked." : ": its signature does NOT verify.");
  const anchor = element("p", "Checking where it is anchored on the chain…", { class: "muted", "data-anchor": "pending" });
  node.replaceChildren(summary, anchor);
  checkAnchor(anchor, receipt, id, 0);
}

async function receiptSigned(receipt) {
  try {
    const key = await verifyKey(receipt.issuer);
    return await crypto.subtle.verify({ name: "Ed25519" }, key, b64urlDecode(receipt.sig), canonicalBytes(without(receipt, "sig")));
  } catch {
    return false;
  }
}

async function checkAnchor(node, receipt, receiptId, attempt) {
  if (!wallet || !node.isConnected) return;
  let proof;
  try {
    proof = await selfRequest(wallet, "identity", "/v1/consents/receipts/proof", "consent-receipt-proof", { receipt_id: receiptId });
  } catch (error) {
    if (error instanceof ApiError && error.type === "not-anchored-yet" && attempt < ANCHOR_RECHECKS) {
      node.textContent = "Not anchored on the chain yet: the city anchors receipts every few seconds.";
      setTimeout(() => checkAnchor(node, receipt, receiptId, attempt + 1), ANCHOR_RECHECK_MS);
    } else {
      node.textContent = `Not anchored on the chain yet (${said(error)})`;
    }
    return;
  }
  const link = element("a", short(proof.tx_id, 16), { href: `/explorer.html#tx=${proof.tx_id}`, class: "mono" });
  try {
    if (!(await verifyAnchor(receipt, proof))) {
      node.replaceChildren("Anchored in transaction ", link, ", not sealed into a block yet.");
      if (attempt < ANCHOR_RECHECKS) setTimeout(() => checkAnchor(node, receipt, receiptId, attempt + 1), ANCHOR_RECHECK_MS);
      return;
    }
    node.replaceChildren("Anchored on the chain in transaction ", link, ": proven in your browser against the ledger's signed checkpoint.");
    node.dataset.anchor = "proven";
  } catch (error) {
    node.replaceChildren("Anchored in transaction ", link, `, but not proven: ${error instanceof ProofError ? error.message : said(error)}`);
    node.dataset.anchor = "unproven";
  }
}

// A receipt is in the batch its anchor signs (RFC 9162 inclusion in the anchor's root), and the anchor is in
// the ledger's tree under a checkpoint whose signature verifies (services/ledger/anchors.py verify_receipt).
async function verifyAnchor(receipt, proof) {
  const record = await call("ledger", `/v1/transactions/${proof.tx_id}`);
  const anchor = record.anchor;
  if (record.type !== "anchor" || !anchor) throw new ProofError("the transaction is not an anchor");
  if (anchor.anchorer !== receipt.issuer || anchor.root !== proof.anchor?.root) throw new ProofError("the anchor is not the one the receipt's issuer signed");
  const anchorer = await verifyKey(anchor.anchorer);
  if (!(await crypto.subtle.verify({ name: "Ed25519" }, anchorer, b64urlDecode(anchor.sig), canonicalBytes(without(anchor, "sig"))))) {
    throw new ProofError("the anchor's signature does not verify");
  }
  await verifyInclusion(await leafHash(canonicalBytes(receipt)), proof.leaf_index, anchor.size, proof.audit_path.map(hexDecode), hexDecode(anchor.root));
  const checkpoint = await call("ledger", "/v1/checkpoint");
  const inclusion = await proofOnceSealed(proof.tx_id, checkpoint.tree_size);
  if (inclusion === null) return false;
  await verifyTransaction(record, inclusion, checkpoint);
  return true;
}
