// What the wallet signs, built as the services check it. `wallet` is {did, key}: its did:key and its
// non-extractable Ed25519 CryptoKey (wallet-vault.js); its AID holder key (`wallet.aid`) is the same kind of
// key, so it signs transfers and reads its own account with these too.

import { call } from "./api.js";
import { publicKeyFromDid } from "./didkey.js";
import { b64urlDecode, b64urlEncode, hexEncode, sha256, utf8 } from "./encoding.js";
import { canonicalBytes, without } from "./jcs.js";
import { signBytes, signObject, signedReadHeaders } from "./signing.js";

export const nowRfc3339 = () => new Date().toISOString();

// A signed read (RFC 9421) of the wallet's own data: `path` is the service's path, query included.
export async function signedGet(wallet, service, path) {
  return call(service, path, { headers: await signedReadHeaders(wallet.key, wallet.did, path) });
}

export async function signedPost(wallet, service, path, object) {
  return call(service, path, { method: "POST", body: await signObject(wallet.key, object) });
}

// Identity's requests of a person's own data (services/identity/requests.py SelfRequest and its kin).
export async function selfRequest(wallet, service, path, action, extra = {}) {
  return signedPost(wallet, service, path, { did: wallet.did, action, ...extra, issued_at: nowRfc3339() });
}

// The did registered with identity (201, or 200 when it was already).
export async function registerIdentity(wallet) {
  return signedPost(wallet, "identity", "/v1/identities", { did: wallet.did, issued_at: nowRfc3339() });
}

// The id of a signed object (a consent receipt): sha256 hex of the JCS bytes without `sig`.
export async function objectId(object) {
  return hexEncode(await sha256(canonicalBytes(without(object, "sig"))));
}

// A memo as the ledger takes it (services/common/memos.py, RFC 9901's disclosure of a property "memo"): the
// disclosure is base64url of the JSON array [salt, "memo", text] with a fresh 128-bit salt; the digest, which
// the transfer signs as memo_digest, is base64url SHA-256 of the disclosure's ASCII text.
export const MAX_MEMO_CHARS = 280;

export async function commitMemo(text) {
  if ([...text].length > MAX_MEMO_CHARS) throw new Error(`A memo is at most ${MAX_MEMO_CHARS} characters.`);
  const salt = b64urlEncode(crypto.getRandomValues(new Uint8Array(16)));
  const disclosure = b64urlEncode(utf8.encode(JSON.stringify([salt, "memo", text])));
  const digest = b64urlEncode(await sha256(utf8.encode(disclosure)));
  return { disclosure, digest };
}

// The body of POST /v1/transfers: the transfer signed by the wallet (`sig`), a memo's disclosure beside it.
export async function transferBody(wallet, { to, amount, currency, nonce, memo }) {
  const transfer = { from: wallet.did, to, amount, currency, nonce };
  if (!memo) return signObject(wallet.key, transfer);
  const { disclosure, digest } = await commitMemo(memo);
  const signed = await signObject(wallet.key, { ...transfer, memo_digest: digest });
  return { ...signed, memo_disclosure: disclosure };
}

// A consent change (services/common/consents.py), signed by its subject.
export async function consentChange(wallet, category, grant, purpose) {
  return signObject(wallet.key, {
    subject: wallet.did,
    category,
    grantee: "city",
    action: grant ? "grant" : "revoke",
    purpose,
    issued_at: nowRfc3339(),
  });
}

// A device's registration as its own software made it (signed by the device into `device_sig`), checked
// for what the person can be told plainly, then signed by this wallet as owner (`sig`, over all of it).
export class InputError extends Error {}

export async function ownerSignedRegistration(wallet, text) {
  let registration;
  try {
    registration = JSON.parse(text);
  } catch {
    throw new InputError("This is not the device's registration: it is not JSON. Paste exactly what the device's software gave you.");
  }
  if (registration === null || typeof registration !== "object" || Array.isArray(registration)) {
    throw new InputError("This is not a device registration: not a JSON object.");
  }
  for (const field of ["device_id", "kind", "zone", "device_sig"]) {
    if (typeof registration[field] !== "string") throw new InputError(`The registration has no ${field}: the device's software must sign it first.`);
  }
  if (registration.owner !== wallet.did) {
    throw new InputError(`The registration names ${registration.owner ? `another owner (${registration.owner})` : "no owner"}: the device's software must name this wallet, ${wallet.did}.`);
  }
  if ("sig" in registration) throw new InputError("This registration is signed by an owner already.");
  return signObject(wallet.key, registration);
}

// Binding the wallet to the person of a resident credential (services/common/bindings.py binding_request):
// an SD-JWT presentation disclosing no claim, with a key-binding JWT (typ kb+jwt, EdDSA) by this wallet's key
// for the audience "smartcity:bindings" and the wallet's did as nonce, inside a request the wallet signs.
export const BINDING_AUDIENCE = "smartcity:bindings";
export const RESIDENT_VCT = "https://smartcity.example/credentials/resident/v1";

const jsonPart = (value) => b64urlEncode(utf8.encode(JSON.stringify(value)));

function decodePart(part) {
  return JSON.parse(new TextDecoder().decode(b64urlDecode(part)));
}

// The issuer-signed JWT of a pasted SD-JWT and what it says (unverified: identity verifies it), checked for
// what the person can be told plainly: that it is a resident credential, issued to this wallet's key.
export function readCredential(wallet, text) {
  const compact = text.replace(/\s+/g, "");
  const [jwt] = compact.split("~");
  const parts = jwt.split(".");
  if (!compact.includes("~") || parts.length !== 3) throw new InputError("This is not a credential: paste the whole text the city gave you (it has dots and tildes).");
  let payload;
  try {
    payload = decodePart(parts[1]);
  } catch {
    throw new InputError("This credential cannot be read: part of it is missing or changed.");
  }
  if (payload.vct !== RESIDENT_VCT) throw new InputError("This is not a resident credential: only the city's resident credential binds a wallet.");
  const holder = payload.cnf?.jwk?.x;
  if (holder !== b64urlEncode(publicKeyFromDid(wallet.did))) {
    throw new InputError("This credential was issued to another key than this wallet's: ask the city for one issued to this wallet's id.");
  }
  if (Number.isInteger(payload.exp) && payload.exp * 1000 < Date.now()) throw new InputError("This credential has expired: ask the city for a new one.");
  return { jwt, payload };
}

export async function bindingRequest(wallet, credentialText) {
  const { jwt, payload } = readCredential(wallet, credentialText);
  const presented = `${jwt}~`; // no disclosure: the binding needs no claim
  const issuedAt = new Date();
  const sdHash = b64urlEncode(await sha256(utf8.encode(presented)));
  const header = jsonPart({ typ: "kb+jwt", alg: "EdDSA" });
  const body = jsonPart({ iat: Math.floor(issuedAt.getTime() / 1000), aud: BINDING_AUDIENCE, nonce: wallet.did, sd_hash: sdHash });
  const signature = await signBytes(wallet.key, utf8.encode(`${header}.${body}`));
  const presentation = `${presented}${header}.${body}.${b64urlEncode(signature)}`;
  const request = await signObject(wallet.key, { wallet: wallet.did, presentation, issued_at: issuedAt.toISOString() });
  return { request, credential: payload };
}
