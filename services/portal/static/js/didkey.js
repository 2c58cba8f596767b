// did:key for Ed25519 keys: "did:key:z" + base58btc(0xed 0x01 || the 32-byte public key).

import { concat } from "./encoding.js";

const ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const ED25519_PREFIX = new Uint8Array([0xed, 0x01]);

function base58Encode(bytes) {
  let number = 0n;
  for (const byte of bytes) number = number * 256n + BigInt(byte);
  let text = "";
  while (number > 0n) {
    text = ALPHABET[Number(number % 58n)] + text;
    number /= 58n;
  }
  for (const byte of bytes) {
    if (byte !== 0) break;
    text = `1${text}`;
  }
  return text;
}

function base58Decode(text) {
  let number = 0n;
  for (const char of text) {
    const digit = ALPHABET.indexOf(char);
    if (digit < 0) throw new Error(`not base58btc: ${char}`);
    number = number * 58n + BigInt(digit);
  }
  const bytes = [];
  while (number > 0n) {
    bytes.unshift(Number(number % 256n));
    number /= 256n;
  }
  for (const char of text) {
    if (char !== "1") break;
    bytes.unshift(0);
  }
  return new Uint8Array(bytes);
}

export function didFromPublicKey(publicKey) {
  return `did:key:z${base58Encode(concat(ED25519_PREFIX, publicKey))}`;
}

export function publicKeyFromDid(did) {
  if (!did.startsWith("did:key:z")) throw new Error(`not a did:key: ${did}`);
  const bytes = base58Decode(did.slice("did:key:z".length));
  if (bytes.length !== 34 || bytes[0] !== 0xed || bytes[1] !== 0x01) throw new Error("not an Ed25519 did:key");
  return bytes.slice(2);
}

export async function verifyKey(did) {
  return crypto.subtle.importKey("raw", publicKeyFromDid(did), { name: "Ed25519" }, false, ["verify"]);
}
