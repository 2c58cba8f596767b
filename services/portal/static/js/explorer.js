// The explorer: the latest signed checkpoint, the latest blocks, a transaction's inclusion proof and the
// consistency of two checkpoints, each verified here (merkle.js) against the ledger's signature.

import { call, explain, proofOnceSealed } from "./api.js";
import { $, element, fillRows, showStatus } from "./dom.js";
import { hexDecode } from "./encoding.js";
import { ProofError, verifyCheckpoint, verifyConsistency, verifyTransaction } from "./merkle.js";

const BLOCKS_SHOWN = 10;
const PINNED_KEY = "smartcity.ledger-key";

// The first ledger key this browser verified is kept: a checkpoint signed by another key is named, since a
// signature only proves something against a key you already trust.
function checkPinnedKey(publicKey) {
  const pinned = localStorage.getItem(PINNED_KEY);
  if (pinned === null) {
    localStorage.setItem(PINNED_KEY, publicKey);
    return null;
  }
  return pinned === publicKey ? null : pinned;
}

async function showCheckpoint() {
  const status = $("#checkpoint-status");
  try {
    const checkpoint = await call("ledger", "/v1/checkpoint");
    await verifyCheckpoint(checkpoint);
    const pinned = checkPinnedKey(checkpoint.public_key);
    if (pinned) showStatus(status, "bad", `Signature verified, but by ${checkpoint.public_key}, not the key this browser first trusted (${pinned}).`);
    else showStatus(status, "good", "Signature verified: the ledger's key signed this tree head.");
    fillRows($("#checkpoint tbody"), [
      ["Height", checkpoint.height],
      ["Tree size (transactions)", checkpoint.tree_size],
      ["Root hash", element("code", checkpoint.root_hash)],
      ["Sealed at", checkpoint.timestamp],
      ["Signed by", element("code", checkpoint.public_key)],
    ]);
    return checkpoint;
  } catch (error) {
    showStatus(status, "bad", error instanceof ProofError ? `Not verified: ${error.message}` : explain(error));
    return null;
  }
}

async function showBlocks(latest) {
  const rows = [];
  for (let height = latest; height >= 0 && height > latest - BLOCKS_SHOWN; height -= 1) {
    const block = await call("ledger", `/v1/blocks/${height}`);
    const txs = element("ul");
    txs.className = "mono tx-list";
    for (const txId of block.tx_ids.slice(0, 5)) {
      const item = element("li");
      const link = element("a", `${txId.slice(0, 16)}…`, { href: `#tx=${txId}`, "aria-label": `Verify transaction ${txId}` });
      item.append(link);
      txs.append(item);
    }
    if (block.tx_ids.length > 5) txs.append(element("li", `and ${block.tx_ids.length - 5} more`));
    rows.push([block.height, block.timestamp, block.tree_size, txs]);
  }
  fillRows($("#blocks tbody"), rows);
}

async function verifyTx(txId) {
  const status = $("#tx-status");
  showStatus(status, "info", "Checking…");
  $("#tx-record").hidden = true;
  try {
    const record = await call("ledger", `/v1/transactions/${txId}`);
    const checkpoint = await call("ledger", "/v1/checkpoint");
    const proof = await proofOnceSealed(txId, checkpoint.tree_size);
    if (proof === null) {
      showStatus(status, "info", "Not sealed into a block yet: try again in a moment.");
      return;
    }
    fillRows($("#tx-details tbody"), [
      ["Type", record.type],
      ["Leaf index", proof.leaf_index],
      ["Tree size", proof.tree_size],
      ["Checkpoint height", checkpoint.height],
    ]);
    $("#tx-record pre").textContent = JSON.stringify(record, null, 2);
    $("#tx-record").hidden = false;
    await verifyTransaction(record, proof, checkpoint);
    showStatus(status, "good", `verified: transaction ${txId.slice(0, 16)}… is leaf ${proof.leaf_index} of the ${proof.tree_size}-leaf tree the ledger signed at height ${checkpoint.height}.`);
  } catch (error) {
    if (error instanceof ProofError) showStatus(status, "bad", `not verified: ${error.message}`);
    else showStatus(status, "bad", explain(error));
  }
}

async function checkConsistency(firstHeight, secondHeight) {
  const status = $("#consistency-status");
  showStatus(status, "info", "Checking…");
  try {
    const first = await call("ledger", `/v1/blocks/${firstHeight}`);
    const second = await call("ledger", `/v1/blocks/${secondHeight}`);
    await verifyCheckpoint(first);
    await verifyCheckpoint(second);
    const answer = await call("ledger", `/v1/consistency?first=${first.tree_size}&second=${second.tree_size}`);
    await verifyConsistency(first.tree_size, second.tree_size, answer.proof.map(hexDecode), hexDecode(first.root_hash), hexDecode(second.root_hash));
    showStatus(status, "good", `consistent: the ${second.tree_size}-leaf tree of height ${second.height} extends the ${first.tree_size}-leaf tree of height ${first.height} unchanged.`);
  } catch (error) {
    showStatus(status, "bad", error instanceof ProofError ? `not consistent: ${error.message}` : explain(error));
  }
}

function txFromHash() {
  const match = /tx=([0-9a-f]{64})/.exec(location.hash);
  return match ? match[1] : null;
}

$("#verify-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const txId = $("#tx-id").value.trim();
  history.replaceState(null, "", `#tx=${txId}`);
  verifyTx(txId);
});
window.addEventListener("hashchange", () => {
  const txId = txFromHash();
  if (txId) {
    $("#tx-id").value = txId;
    verifyTx(txId);
  }
});
$("#consistency-form").addEventListener("submit", (event) => {
  event.preventDefault();
  checkConsistency(Number($("#first-height").value), Number($("#second-height").value));
});

const checkpoint = await showCheckpoint();
if (checkpoint) {
  $("#first-height").value = Math.max(0, checkpoint.height - 5);
  $("#second-height").value = checkpoint.height;
  showBlocks(checkpoint.height).catch((error) => showStatus($("#checkpoint-status"), "bad", explain(error)));
}
const linked = txFromHash();
if (linked) {
  $("#tx-id").value = linked;
  verifyTx(linked);
}
