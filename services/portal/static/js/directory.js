// The directory: local-first search (GET /v1/search) with each result's score parts explained, and local
// alternatives to a chain (GET /v1/alternatives). docs/directory-ranking.md describes the ranking.

import { ApiError, call, explain } from "./api.js";
import { $, element, showStatus } from "./dom.js";

const PAGE = 20;
let categories = {};
let weights = null;
let lastQuery = null; // the URLSearchParams of the shown results, for "More results"
let shown = 0;

function number(value, digits = 2) {
  return Number(value).toLocaleString("en", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function distanceText(km) {
  return km < 1 ? `${Math.round(km * 1000)} m away` : `${number(km, 1)} km away`;
}

function categoryText(name) {
  return categories[name] ? `${categories[name]} (${name})` : name;
}

// Whether a merchant is local, verified, or a chain: a short label and a class for its badge.
function ownership(merchant) {
  if (!merchant.locally_owned) {
    return { label: merchant.chain ? `Chain: ${merchant.chain}` : "Not locally owned", kind: "chain" };
  }
  if (merchant.verified) return { label: "Locally owned · verified by the city", kind: "local" };
  return { label: "Says it is locally owned · not verified", kind: "unverified" };
}

// Why a result ranks where it does, from the score parts the API returns (already weighted).
function why(result, query, alternative) {
  const score = result.score;
  const parts = [`Score ${number(score.total)} = match ${number(score.text)} + nearness ${number(score.distance)} + local ${number(score.local)}.`];
  const reasons = [];
  if (alternative) reasons.push("a local alternative, ranked by nearness and the local bonus only");
  else if (!query.get("q")) reasons.push("no words searched, so match does not count");
  else if (weights && score.text >= weights.text - 1e-6) reasons.push("its name matches every word you typed");
  else if (score.text > 0) reasons.push("it matches your words in part (or with a typo, or in its description)");
  if (result.distance_km === null || result.distance_km === undefined) reasons.push("no place given, so nearness does not count");
  else reasons.push(`it is ${distanceText(result.distance_km).replace(" away", "")} from the place you gave`);
  if (!result.locally_owned) reasons.push("no local bonus: it is a chain");
  else if (result.verified) reasons.push("full local bonus: locally owned, and the city verified it");
  else reasons.push("part of the local bonus: it says it is locally owned, but the city has not verified it yet");
  parts.push(`${reasons.join("; ")}.`.replace(/^./, (c) => c.toUpperCase()));
  return parts;
}

// `alternative`: the card is one of the local alternatives to a chain (no text part, no further alternatives).
function merchantCard(result, query, { alternative = false } = {}) {
  const item = element("li", null, { class: "result", "data-wallet": result.wallet });
  item.append(element("h3", result.name));
  const badges = element("ul", null, { class: "badges", "aria-label": "Facts" });
  const owned = ownership(result);
  badges.append(element("li", owned.label, { class: `badge ${owned.kind}` }));
  badges.append(element("li", result.category, { class: "badge", title: categories[result.category] ?? "" }));
  if (result.distance_km !== null && result.distance_km !== undefined) badges.append(element("li", distanceText(result.distance_km), { class: "badge" }));
  if (result.open_now === true) badges.append(element("li", "Open now", { class: "badge local" }));
  else if (result.open_now === false) badges.append(element("li", "Closed now", { class: "badge" }));
  item.append(badges);
  if (result.accepts?.length) item.append(element("p", `Takes ${result.accepts.join(", ")}`));
  if (result.address) item.append(element("p", result.address));
  if (result.description) item.append(element("p", result.description, { class: "muted" }));
  if (result.score) {
    const [sum, reasons] = why(result, query, alternative);
    const explained = element("div", null, { class: "why" });
    explained.append(element("p", sum, { class: "score" }), element("p", reasons));
    item.append(explained);
  }
  if (!alternative && !result.locally_owned && result.chain) item.append(alternativesButton(result.chain, query));
  return item;
}

// A button under a chain's result that lists local businesses of the chain's categories beneath it.
function alternativesButton(chain, query) {
  const wrap = element("div", null, { class: "alternatives" });
  const button = element("button", `Local alternatives to ${chain}`, { type: "button", class: "secondary", "aria-expanded": "false" });
  const list = element("ol", null, { class: "results" });
  const status = element("p", null, { class: "muted", role: "status" });
  list.hidden = true;
  button.addEventListener("click", async () => {
    if (button.getAttribute("aria-expanded") === "true") {
      button.setAttribute("aria-expanded", "false");
      list.hidden = true;
      status.textContent = "";
      return;
    }
    button.setAttribute("aria-expanded", "true");
    await showAlternatives(chain, query, list, status);
  });
  wrap.append(button, status, list);
  return wrap;
}

async function showAlternatives(to, near, list, status) {
  const params = new URLSearchParams({ to, limit: "10" });
  for (const name of ["lat", "lon", "radius_km"]) if (near?.get(name)) params.set(name, near.get(name));
  status.textContent = "Looking…";
  try {
    const answer = await call("directory", `/v1/alternatives?${params}`);
    const query = new URLSearchParams(params);
    query.delete("q");
    list.replaceChildren(...answer.alternatives.map((result) => merchantCard(result, query, { alternative: true })));
    list.hidden = false;
    const kinds = answer.categories.map(categoryText).join(", ");
    status.textContent = answer.total
      ? `${answer.total} locally owned ${answer.total === 1 ? "business" : "businesses"} of ${kinds}, ranked by nearness and the local bonus (verified first).`
      : `No locally owned business of ${kinds}${params.has("lat") ? " near that place" : ""} yet.`;
  } catch (error) {
    list.hidden = true;
    status.textContent = error instanceof ApiError && error.status === 404
      ? `The directory knows no chain, category or product called “${to}”.`
      : explain(error);
  }
}

function showWeights(ranking) {
  weights = ranking;
  $("#w-text").textContent = number(ranking.text, 1);
  $("#w-distance").textContent = number(ranking.distance, 1);
  $("#w-half").textContent = number(ranking.half_distance_km, 1);
  $("#w-local").textContent = number(ranking.local);
  $("#w-unverified").textContent = number(ranking.local * ranking.unverified_local);
}

// The search's parameters from the form, or a sentence saying what to fix.
function searchParams() {
  const params = new URLSearchParams({ limit: String(PAGE) });
  const q = $("#q").value.trim();
  if (q) params.set("q", q);
  if ($("#category").value) params.set("category", $("#category").value);
  if ($("#accepts").value) params.set("accepts", $("#accepts").value);
  if ($("#open-now").checked) params.set("open_now", "true");
  const lat = $("#lat").value.trim();
  const lon = $("#lon").value.trim();
  const radius = $("#radius").value.trim();
  if (Boolean(lat) !== Boolean(lon)) return "Give both a latitude and a longitude, or neither.";
  if (lat) {
    if (!$("#lat").checkValidity() || !$("#lon").checkValidity()) return "Latitude is between -90 and 90, longitude between -180 and 180.";
    params.set("lat", lat);
    params.set("lon", lon);
    if (radius) {
      if (!$("#radius").checkValidity()) return "Within: between 0.1 and 50 km.";
      params.set("radius_km", radius);
    }
  } else if (radius) {
    return "A distance needs a place: give a latitude and a longitude too.";
  }
  return params;
}

async function search(params, append = false) {
  const status = $("#search-status");
  showStatus(status, "info", "Searching…");
  if (!append) {
    shown = 0;
    params.set("offset", "0");
  } else {
    params.set("offset", String(shown));
  }
  try {
    const answer = await call("directory", `/v1/search?${params}`);
    showWeights(answer.ranking);
    lastQuery = params;
    const cards = answer.results.map((result) => merchantCard(result, params));
    if (append) $("#results").append(...cards);
    else $("#results").replaceChildren(...cards);
    shown += answer.results.length;
    $("#more").hidden = shown >= answer.total;
    const words = params.get("q") ? ` for “${params.get("q")}”` : "";
    showStatus(
      status,
      answer.total ? "good" : "info",
      answer.total
        ? `${answer.total} ${answer.total === 1 ? "result" : "results"}${words}, local businesses first. Showing ${shown}.`
        : `Nothing found${words}. Try fewer words, another category, or a wider distance.`,
    );
  } catch (error) {
    showStatus(status, "bad", explain(error));
  }
}

async function loadCategories() {
  try {
    const answer = await call("directory", "/v1/categories");
    categories = answer.categories;
    const select = $("#category");
    for (const [name, description] of Object.entries(categories)) select.append(element("option", `${description} (${name})`, { value: name }));
  } catch (error) {
    showStatus($("#search-status"), "bad", `The categories could not be loaded: ${explain(error)}`);
  }
}

$("#search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const params = searchParams();
  if (typeof params === "string") {
    showStatus($("#search-status"), "bad", params);
    return;
  }
  search(params);
});
$("#more").addEventListener("click", () => {
  if (lastQuery) search(new URLSearchParams(lastQuery), true);
});
$("#alternatives-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const to = $("#alt-to").value.trim();
  const status = $("#alternatives-status");
  if (!to) {
    showStatus(status, "bad", "Name a chain, a category or a product.");
    return;
  }
  status.hidden = false;
  status.className = "status info";
  const near = searchParams();
  showAlternatives(to, typeof near === "string" ? null : near, $("#alternatives"), status);
});
if (navigator.geolocation && window.isSecureContext) {
  const locate = $("#locate");
  locate.hidden = false;
  locate.addEventListener("click", () => {
    showStatus($("#search-status"), "info", "Finding where you are…");
    navigator.geolocation.getCurrentPosition(
      (position) => {
        $("#lat").value = position.coords.latitude.toFixed(5);
        $("#lon").value = position.coords.longitude.toFixed(5);
        showStatus($("#search-status"), "info", "Place set to where you are. Press Search.");
      },
      () => showStatus($("#search-status"), "bad", "Your location is not available; type a latitude and longitude instead."),
      { timeout: 10_000, maximumAge: 60_000 },
    );
  });
}
await loadCategories();
