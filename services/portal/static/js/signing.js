// Signing as the platform does: a JSON object's `sig` is the Ed25519 signature of the JCS bytes of the object
// without it (unpadded base64url); a signed read (RFC 9421) signs the request line ("@method" "@path" "@query")
// with the reader's did:key as keyid. The key is a WebCrypto CryptoKey (Ed25519), kept in the browser.

import { b64Encode, b64urlEncode, utf8 } from "./encoding.js";
import { canonicalBytes, without } from "./jcs.js";

export async function signBytes(privateKey, bytes) {
  return new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, privateKey, bytes));
}

// A copy of `object` with `field` set to the signature over it without `field` and the `exclude`d fields.
export async function signObject(privateKey, object, field = "sig", exclude = []) {
  const body = without(object, field);
  const signature = await signBytes(privateKey, canonicalBytes(without(body, ...exclude)));
  return { ...body, [field]: b64urlEncode(signature) };
}

// The headers of a signed read of `pathAndQuery` ("/v1/...?..."), as services/common/signed_reads.py checks.
export async function signedReadHeaders(privateKey, did, pathAndQuery, method = "GET") {
  const at = pathAndQuery.indexOf("?");
  const path = at < 0 ? pathAndQuery : pathAndQuery.slice(0, at);
  const query = at < 0 ? "?" : pathAndQuery.slice(at);
  const created = Math.floor(Date.now() / 1000);
  const params = `("@method" "@path" "@query");created=${created};keyid="${did}";alg="ed25519"`;
  const base = [`"@method": ${method}`, `"@path": ${path}`, `"@query": ${query}`, `"@signature-params": ${params}`].join("\n");
  const signature = await signBytes(privateKey, utf8.encode(base));
  return { "signature-input": `sig=${params}`, signature: `sig=:${b64Encode(signature)}:` };
}
