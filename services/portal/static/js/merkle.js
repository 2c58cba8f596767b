// Proof checks of the ledger's log, RFC 9162 (Certificate Transparency v2) 2.1.3.2 and 2.1.4.2, and of its
// signed checkpoints: what the explorer verifies in the browser, trusting nothing the portal says.
//
// Tree sizes and indexes are plain numbers, halved with Math.floor: JavaScript's bit operators would cut them
// to 32 bits.

import { b64urlDecode, equalBytes, hexDecode, hexEncode, sha256 } from "./encoding.js";
import { canonicalBytes, without } from "./jcs.js";
import { verifyKey } from "./didkey.js";

export class ProofError extends Error {}

const LEAF = new Uint8Array([0]);
const NODE = new Uint8Array([1]);
const odd = (n) => n % 2 === 1;
const half = (n) => Math.floor(n / 2);

export function leafHash(data) {
  return sha256(LEAF, data);
}

function nodeHash(left, right) {
  return sha256(NODE, left, right);
}

export async function rootFromInclusion(index, size, leaf, path) {
  if (!(index >= 0 && index < size)) throw new ProofError(`leaf index ${index} is outside a tree of ${size}`);
  let fn = index;
  let sn = size - 1;
  let root = leaf;
  for (const sibling of path) {
    if (sn === 0) throw new ProofError("the proof is longer than the tree is deep");
    if (odd(fn) || fn === sn) {
      root = await nodeHash(sibling, root);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      root = await nodeHash(root, sibling);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new ProofError("the proof is shorter than the tree is deep");
  return root;
}

export async function verifyInclusion(leaf, index, size, path, expectedRoot) {
  const root = await rootFromInclusion(index, size, leaf, path);
  if (!equalBytes(root, expectedRoot)) {
    throw new ProofError(`the proof leads to root ${hexEncode(root)}, not the signed ${hexEncode(expectedRoot)}`);
  }
}

const isPowerOfTwo = (n) => n > 0 && 2 ** Math.round(Math.log2(n)) === n;

export async function verifyConsistency(first, second, proof, firstRoot, secondRoot) {
  if (!(first > 0 && first <= second)) throw new ProofError(`need 0 < first <= second, got ${first} and ${second}`);
  if (first === second) {
    if (proof.length) throw new ProofError("a tree is consistent with itself with an empty proof only");
    if (!equalBytes(firstRoot, secondRoot)) throw new ProofError("the same tree size has two roots");
    return;
  }
  if (!proof.length) throw new ProofError("an empty consistency proof");
  const path = isPowerOfTwo(first) ? [firstRoot, ...proof] : [...proof];
  let fn = first - 1;
  let sn = second - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) throw new ProofError("the proof is longer than the trees are deep");
    if (odd(fn) || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new ProofError("the proof is shorter than the trees are deep");
  if (!equalBytes(fr, firstRoot)) throw new ProofError(`the proof does not lead to the first root ${hexEncode(firstRoot)}`);
  if (!equalBytes(sr, secondRoot)) throw new ProofError(`the proof does not lead to the second root ${hexEncode(secondRoot)}`);
}

// A checkpoint (a signed block header) is signed by the ledger's key over the JCS bytes of the header
// without its signature. Resolves if it verifies; throws ProofError naming what does not.
export async function verifyCheckpoint(header) {
  let key;
  try {
    key = await verifyKey(header.public_key);
  } catch (error) {
    throw new ProofError(`the checkpoint's key is not an Ed25519 did:key: ${error.message}`);
  }
  const signature = b64urlDecode(header.signature);
  const body = canonicalBytes(without(header, "signature"));
  if (!(await crypto.subtle.verify({ name: "Ed25519" }, key, signature, body))) {
    throw new ProofError(`the checkpoint's signature does not verify under ${header.public_key}`);
  }
}

// The whole check of a transaction as the ledger serves it: its record hashed as the leaf, the proof up to
// the root of a checkpoint whose signature verifies.
export async function verifyTransaction(record, proof, checkpoint) {
  await verifyCheckpoint(checkpoint);
  if (proof.tree_size !== checkpoint.tree_size) {
    throw new ProofError(`the proof is for a tree of ${proof.tree_size}, the checkpoint signs ${checkpoint.tree_size}`);
  }
  const leaf = await leafHash(canonicalBytes(record));
  if (proof.leaf_hash !== undefined && hexEncode(leaf) !== proof.leaf_hash) {
    throw new ProofError(`the record hashes to leaf ${hexEncode(leaf)}, not the proof's ${proof.leaf_hash}`);
  }
  await verifyInclusion(leaf, proof.leaf_index, proof.tree_size, proof.audit_path.map(hexDecode), hexDecode(checkpoint.root_hash));
}
