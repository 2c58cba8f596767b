// The wallet's keys, held in this browser: WebCrypto Ed25519 key pairs made here, never sent anywhere.
//
// Two keys: the wallet's own, and its AID holder key, which the city grants AID to and AID is spent from. The
// AID holder key is kept apart from the wallet's (services/common/aid_holder.py) so that the public chain never
// links the two: a wallet app derives it from its wallet's seed, but a browser cannot (WebCrypto has no
// BLAKE2b, and the wallet's key is not extractable), so this one is made with the wallet, at random, and kept
// in the backup beside it.
//
// Each key is made once as an extractable pair: its private key is exported (PKCS#8) only to be encrypted
// under the passphrase the person chose (the backup), then imported again as a NON-extractable CryptoKey, which
// is what the page signs with every day. IndexedDB keeps those CryptoKeys (the browser keeps their bytes out of
// reach of any script, this page's included) and the encrypted backup; never a key in the clear, nor the
// passphrase.
//
// The backup (a JSON file, version 2; every byte string unpadded base64url):
//
//   {"version": 2, "did": "did:key:z6Mk...", "salt": "<16 random bytes>", "iterations": 600000,
//    "iv": "<12 random bytes>", "ciphertext": "<AES-256-GCM ciphertext with its 16-byte tag appended>",
//    "aid_iv": "<12 random bytes>", "aid_ciphertext": "<AES-256-GCM ciphertext with its tag appended>"}
//
// key            = PBKDF2-HMAC-SHA256(password = UTF-8 of the passphrase in Unicode NFC, salt, iterations, 32 bytes)
// ciphertext     = AES-256-GCM(key, iv, plaintext, no additional data), tag last (WebCrypto's layout)
// plaintext      = the wallet's Ed25519 private key as PKCS#8 DER (RFC 8410: 48 bytes, the 32-byte seed last)
// did            = the did:key of the wallet key's public key (a restore checks the decrypted key gives this did)
// aid_ciphertext = AES-256-GCM(key, aid_iv, the AID holder key's PKCS#8 DER, additional data = the ASCII bytes
//                  of "smartcity-aid-holder"), tag last: the same key, an iv of its own, and additional data
//                  that keeps the two ciphertexts from being taken for each other
//
// The AID holder key's did is not written in the clear: the file names only the wallet, so whoever sees it
// without the passphrase does not learn which key holds its AID.
//
// Version 1 is version 2 without aid_iv and aid_ciphertext (a wallet made before it had an AID holder key). It
// is still read: its restore makes a new AID holder key, adds it to the backup kept here (version 2 from then
// on) and says so, so that the person downloads the backup again.
//
// `iterations` is at least 600,000 (OWASP's figure for PBKDF2-HMAC-SHA256); a restore refuses fewer.

import { didFromPublicKey } from "./didkey.js";
import { b64urlDecode, b64urlEncode, utf8 } from "./encoding.js";

export const BACKUP_VERSION = 2;
const READ_VERSIONS = [1, 2];
export const ITERATIONS = 600_000;
const MAX_ITERATIONS = 10_000_000; // a backup file asking more would only stall the page
const SALT_BYTES = 16;
const IV_BYTES = 12;
export const MIN_PASSPHRASE_CHARS = 12;

const DB_NAME = "smartcity-wallet";
const STORE = "wallet";
const CURRENT = "current";
const ED25519 = { name: "Ed25519" };
const AID_AAD = utf8.encode("smartcity-aid-holder"); // the AID holder key's ciphertext's additional data

export class BackupError extends Error {}

// IndexedDB, as promises.

function openDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function withStore(mode, action) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = action(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error("the browser refused to store the wallet"));
    });
  } finally {
    db.close();
  }
}

// The wallet kept on this device: {did, key (a non-extractable CryptoKey, "sign" only), aid ({did, key}: its AID
// holder key, the same kind of key; absent from a wallet kept here before it had one), backup, registered,
// binding}, or null.
export async function loadWallet() {
  return (await withStore("readonly", (store) => store.get(CURRENT))) ?? null;
}

export async function saveWallet(wallet) {
  await withStore("readwrite", (store) => store.put(wallet, CURRENT));
  return wallet;
}

export async function forgetWallet() {
  await withStore("readwrite", (store) => store.delete(CURRENT));
}

// The passphrase's AES-GCM key.

async function passphraseKey(passphrase, salt, iterations) {
  const material = await crypto.subtle.importKey("raw", utf8.encode(passphrase.normalize("NFC")), "PBKDF2", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "PBKDF2", hash: "SHA-256", salt, iterations },
    material,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

function randomBytes(n) {
  return crypto.getRandomValues(new Uint8Array(n));
}

function gcm(iv, additionalData) {
  return additionalData ? { name: "AES-GCM", iv, additionalData } : { name: "AES-GCM", iv };
}

async function dailyKey(pkcs8) {
  return crypto.subtle.importKey("pkcs8", pkcs8, ED25519, false, ["sign"]);
}

export function checkPassphrase(passphrase, again) {
  if ([...passphrase].length < MIN_PASSPHRASE_CHARS) {
    throw new BackupError(`Choose a passphrase of at least ${MIN_PASSPHRASE_CHARS} characters: it is all that protects your backup.`);
  }
  if (again !== undefined && passphrase !== again) throw new BackupError("The two passphrases differ: type the same one twice.");
}

// A new key: {did, key (non-extractable), iv, ciphertext (its PKCS#8 sealed under `sealing`, with
// `additionalData` when given)}. The extractable pair it is made as is dropped, its PKCS#8 bytes zeroed.
async function newSealedKey(sealing, additionalData) {
  const pair = await crypto.subtle.generateKey(ED25519, true, ["sign", "verify"]);
  const did = didFromPublicKey(new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  try {
    const iv = randomBytes(IV_BYTES);
    const ciphertext = new Uint8Array(await crypto.subtle.encrypt(gcm(iv, additionalData), sealing, pkcs8));
    return { did, key: await dailyKey(pkcs8), iv: b64urlEncode(iv), ciphertext: b64urlEncode(ciphertext) };
  } finally {
    pkcs8.fill(0);
  }
}

// A sealed key opened: {did, key (non-extractable)}. BackupError `unopened` when the passphrase's key does not
// open it (or it was changed), and when what it holds is not an Ed25519 key.
async function openSealedKey(sealing, iv, ciphertext, additionalData, unopened) {
  let pkcs8;
  try {
    pkcs8 = new Uint8Array(await crypto.subtle.decrypt(gcm(b64urlDecode(iv), additionalData), sealing, b64urlDecode(ciphertext)));
  } catch {
    throw new BackupError(unopened);
  }
  try {
    let publicKey;
    try {
      // Imported extractable only here, for its public half (the JWK's x); the kept key is not extractable.
      const opened = await crypto.subtle.importKey("pkcs8", pkcs8, ED25519, true, ["sign"]);
      publicKey = b64urlDecode((await crypto.subtle.exportKey("jwk", opened)).x);
    } catch {
      throw new BackupError("The backup opened, but what it holds is not an Ed25519 key.");
    }
    return { did: didFromPublicKey(publicKey), key: await dailyKey(pkcs8) };
  } finally {
    pkcs8.fill(0);
  }
}

const WRONG_PASSPHRASE = "Wrong passphrase: it does not open this backup (or the file was changed). Nothing was restored.";

// A new AID holder key for the wallet of `backup`, sealed under the same passphrase key: {aid, backup (version
// 2, with it)}.
async function withNewAidKey(sealing, backup) {
  const made = await newSealedKey(sealing, AID_AAD);
  const aid = { did: made.did, key: made.key };
  return { aid, backup: { ...backup, version: BACKUP_VERSION, aid_iv: made.iv, aid_ciphertext: made.ciphertext } };
}

// A new wallet: its key and its AID holder key made here, their backup encrypted under `passphrase`, kept in
// IndexedDB.
export async function createWallet(passphrase) {
  checkPassphrase(passphrase);
  const salt = randomBytes(SALT_BYTES);
  const sealing = await passphraseKey(passphrase, salt, ITERATIONS);
  const own = await newSealedKey(sealing);
  const { aid, backup } = await withNewAidKey(sealing, {
    version: BACKUP_VERSION,
    did: own.did,
    salt: b64urlEncode(salt),
    iterations: ITERATIONS,
    iv: own.iv,
    ciphertext: own.ciphertext,
  });
  return saveWallet({ did: own.did, key: own.key, aid, backup, registered: false, binding: null, created_at: new Date().toISOString() });
}

function checkBytes(backup, field) {
  if (typeof backup[field] !== "string") throw new BackupError(`This backup has no ${field}.`);
  try {
    b64urlDecode(backup[field]);
  } catch {
    throw new BackupError(`This backup's ${field} is not base64url.`);
  }
}

// The backup as the JSON object it is, checked for shape; throws BackupError saying what is wrong.
export function parseBackup(text) {
  let backup;
  try {
    backup = typeof text === "string" ? JSON.parse(text) : text;
  } catch {
    throw new BackupError("This is not a wallet backup: it is not JSON.");
  }
  if (backup === null || typeof backup !== "object" || Array.isArray(backup)) throw new BackupError("This is not a wallet backup: not a JSON object.");
  if (!READ_VERSIONS.includes(backup.version)) {
    throw new BackupError(`This backup is of version ${JSON.stringify(backup.version)}; this page reads versions ${READ_VERSIONS.join(" and ")}.`);
  }
  if (typeof backup.did !== "string" || !backup.did.startsWith("did:key:z")) throw new BackupError("This backup names no did:key.");
  const { iterations } = backup;
  if (!Number.isInteger(iterations) || iterations < ITERATIONS || iterations > MAX_ITERATIONS) {
    throw new BackupError(`This backup's iterations (${iterations}) are not between ${ITERATIONS} and ${MAX_ITERATIONS}.`);
  }
  const sealed = backup.version === 1 ? ["iv", "ciphertext"] : ["iv", "ciphertext", "aid_iv", "aid_ciphertext"];
  for (const field of ["salt", ...sealed]) checkBytes(backup, field);
  if (b64urlDecode(backup.salt).length < SALT_BYTES) throw new BackupError("This backup's salt is shorter than 16 bytes.");
  for (const field of sealed.filter((name) => name.endsWith("iv"))) {
    if (b64urlDecode(backup[field]).length !== IV_BYTES) throw new BackupError(`This backup's ${field} is not 12 bytes.`);
  }
  return Object.fromEntries(["version", "did", "salt", "iterations", ...sealed].map((field) => [field, backup[field]]));
}

// The wallet of a backup, opened with `passphrase` and kept in IndexedDB: {wallet, newAidKey}, newAidKey true
// when the backup (version 1) held no AID holder key and a new one was made (the backup kept here has it; the
// file restored from does not). Throws BackupError when the passphrase does not open it, or it holds another
// did's key than it names.
export async function restoreWallet(text, passphrase) {
  const parsed = parseBackup(text);
  const sealing = await passphraseKey(passphrase, b64urlDecode(parsed.salt), parsed.iterations);
  const own = await openSealedKey(sealing, parsed.iv, parsed.ciphertext, undefined, WRONG_PASSPHRASE);
  if (own.did !== parsed.did) throw new BackupError(`The backup holds the key of ${own.did}, not of ${parsed.did} it names.`);
  let aid;
  let backup = parsed;
  const newAidKey = parsed.version === 1;
  if (newAidKey) {
    ({ aid, backup } = await withNewAidKey(sealing, parsed));
  } else {
    aid = await openSealedKey(sealing, parsed.aid_iv, parsed.aid_ciphertext, AID_AAD, "The backup's wallet key opened, but its AID key does not: the file was changed. Nothing was restored.");
    if (aid.did === own.did) throw new BackupError("The backup's AID key is the wallet's own key: it must be a key apart.");
  }
  const wallet = await saveWallet({ did: own.did, key: own.key, aid, backup, registered: false, binding: null, created_at: new Date().toISOString() });
  return { wallet, newAidKey };
}

// A wallet kept here from before it had an AID holder key gets one: `passphrase` opens its backup (checked by
// opening the wallet's key), which then keeps the new key too (version 2). `wallet` is changed in place and
// kept, as the page changes it when it is registered or bound. Throws BackupError for a wrong passphrase.
export async function addAidKey(wallet, passphrase) {
  if (wallet.aid) return wallet;
  const before = wallet.backup;
  const backup = parseBackup(before);
  const sealing = await passphraseKey(passphrase, b64urlDecode(backup.salt), backup.iterations);
  const own = await openSealedKey(sealing, backup.iv, backup.ciphertext, undefined, "Wrong passphrase: it does not open this wallet's backup.");
  if (own.did !== wallet.did) throw new BackupError(`This wallet's backup holds the key of ${own.did}, not of ${wallet.did}.`);
  const made = await withNewAidKey(sealing, backup);
  Object.assign(wallet, made);
  try {
    return await saveWallet(wallet);
  } catch (error) {
    delete wallet.aid;
    wallet.backup = before;
    throw error;
  }
}

// The backup file's name and text.
export function backupFile(wallet) {
  const short = wallet.did.slice(-8);
  return { name: `smartcity-wallet-${short}.json`, text: `${JSON.stringify(wallet.backup, null, 2)}\n` };
}
