// Calls to the services through the portal (/api/<service>/v1/...), their problem answers as errors.

export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    const detail = problem?.detail ?? problem?.title ?? `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.problem = problem ?? {};
    this.type = (problem?.type ?? "").split("/").pop();
    this.retryAfter = retryAfter;
  }
}

// `path` is the service's own path, query included ("/v1/accounts/did:key:z6Mk...?limit=10"); `headers` may
// carry a signed read's signature (signing.js), which covers that path.
export async function call(service, path, { method = "GET", body, headers = {} } = {}) {
  const init = { method, headers: { accept: "application/json", ...headers } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return answered(await fetch(`/api/${service}${path}`, init));
}

// A call to the portal's own API (`/v1/...`, answered by the portal, not passed on to a service): the impact
// page's zone figures.
export async function callPortal(path) {
  return answered(await fetch(path, { headers: { accept: "application/json" } }));
}

// An answer's JSON, or its problem as an ApiError.
async function answered(response) {
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text.slice(0, 200) };
  }
  if (!response.ok) throw new ApiError(response.status, data, response.headers.get("retry-after"));
  return data;
}

// What to show a person for a failed call: the service's own words, and when to try again.
export function explain(error) {
  if (!(error instanceof ApiError)) return `Something went wrong: ${error.message}`;
  const again = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : "";
  return `${error.message}${again}`;
}

// A transaction's inclusion proof, or null while the transaction is not sealed into a block yet (the ledger
// answers 404 for a proof it cannot give yet; the caller has already read the transaction itself).
export async function proofOnceSealed(txId, treeSize) {
  try {
    return await call("ledger", `/v1/transactions/${txId}/proof?tree_size=${treeSize}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}
