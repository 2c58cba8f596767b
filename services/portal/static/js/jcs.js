// JSON Canonicalization Scheme (RFC 8785): the bytes every signature on the platform covers.
//
// ECMAScript's own JSON serialisation of strings and numbers is what RFC 8785 specifies, and its default sort
// compares UTF-16 code units, the order RFC 8785 (3.2.3) asks for: so this is the whole of it.

import { utf8 } from "./encoding.js";

export function canonicalize(value) {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) throw new Error("NaN and Infinity are not JSON");
    if (value === undefined || typeof value === "function") throw new Error("not a JSON value");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalize).join(",")}]`;
  const members = Object.keys(value)
    .filter((key) => value[key] !== undefined)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalize(value[key])}`);
  return `{${members.join(",")}}`;
}

export function canonicalBytes(value) {
  return utf8.encode(canonicalize(value));
}

export function without(object, ...fields) {
  return Object.fromEntries(Object.entries(object).filter(([key]) => !fields.includes(key)));
}
