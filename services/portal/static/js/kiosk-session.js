// The kiosk's session: the open wallet's did and PIN, in this module's memory only (never in storage, a cookie
// or the URL), the idle timer, and the forgetting of them, with everything shown, when the person ends the
// session, after an idle time, or when the page is hidden or left.

import { $, hideStatus, showStatus } from "./dom.js";

const DEFAULT_IDLE_S = 120;
const WARN_S = 30;

// The open session: { did, pin, aidHolder, idleSeconds }, or null. Only here, in memory. Read as live bindings
// (kiosk.js): `startSession` and `endSession` are the only ways to change them.
export let session = null;
// Bumped whenever a session ends: an answer arriving for an older generation is dropped, never shown.
export let generation = 0;
let lastInput = 0;
let ticker = null;
// What else a session leaves in memory (kiosk.js: the payment being attempted), forgotten when it ends.
const forgetters = [];

export function forgetWithSession(forget) {
  forgetters.push(forget);
}

// ---- showing and forgetting ----

export function clearFields() {
  for (const field of document.querySelectorAll("input, textarea")) field.value = "";
  for (const select of document.querySelectorAll("select")) select.selectedIndex = 0;
}

// Everything a session showed or typed, gone from the page.
function forgetShown() {
  clearFields();
  $("#session-did").textContent = "";
  $("#aid-holder").textContent = "";
  $("#balances").replaceChildren();
  $("#transactions tbody").replaceChildren();
  $("#transactions-empty").hidden = true;
  $("#transactions-more").hidden = true;
  $("#notices").replaceChildren();
  for (const id of ["#statement-status", "#pay-status", "#notices-status", "#kiosk-status"]) hideStatus($(id));
  $("#idle-alert").textContent = "";
  $("#idle-countdown").textContent = "";
  $("#idle-warning").hidden = true;
  $("#session").hidden = true;
  $("#session-bar").hidden = true;
  $("#open").hidden = false;
}

export function endSession(message) {
  generation += 1;
  if (session) {
    session.pin = "";
    session.did = "";
    session.aidHolder = "";
  }
  session = null;
  for (const forget of forgetters) forget();
  clearInterval(ticker);
  ticker = null;
  forgetShown();
  if (message) showStatus($("#kiosk-status"), "info", message);
}

// ---- the idle timer ----

export function idleSeconds() {
  const configured = Number(document.body.dataset.idleSeconds);
  return Number.isFinite(configured) && configured > 0 ? configured : DEFAULT_IDLE_S;
}

function showIdleTime(seconds) {
  $("#idle-minutes").textContent = seconds % 60 === 0 ? `${seconds / 60} minute${seconds === 60 ? "" : "s"}` : `${seconds} seconds`;
}

function noteInput() {
  if (!session) return;
  lastInput = Date.now();
  if (!$("#idle-warning").hidden) {
    $("#idle-warning").hidden = true;
    $("#idle-alert").textContent = "";
  }
}

// The session `open` starts: shown the idle time it has, and timed from now.
export function startSession(open) {
  session = open;
  showIdleTime(open.idleSeconds);
  lastInput = Date.now();
  ticker = setInterval(tick, 250);
}

function tick() {
  if (!session) return;
  const left = session.idleSeconds - (Date.now() - lastInput) / 1000;
  if (left <= 0) {
    endSession("Session ended after a time without input. Nothing of it is kept on this screen.");
    return;
  }
  const warnAt = Math.min(WARN_S, Math.max(1, session.idleSeconds / 2));
  const warning = $("#idle-warning");
  if (left <= warnAt) {
    if (warning.hidden) {
      warning.hidden = false;
      $("#idle-alert").textContent = "Are you still there? Your session ends soon. Touch the screen or press a key to go on.";
    }
    $("#idle-countdown").textContent = String(Math.ceil(left));
  } else if (!warning.hidden) {
    warning.hidden = true;
  }
}

// ---- wiring ----

showIdleTime(idleSeconds());
$("#end-session").addEventListener("click", () => {
  endSession("Session ended. Nothing of it is kept on this screen.");
  $("#did").focus();
});
$("#stay").addEventListener("click", noteInput);
for (const type of ["pointerdown", "keydown", "input", "wheel", "touchstart"]) {
  document.addEventListener(type, noteInput, { capture: true, passive: true });
}
// Leaving the screen ends the session: another tab or app in front, the page left or put in the back/forward
// cache. A page shown again (Back) starts empty.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden" && session) endSession("Session ended when the screen was left.");
});
window.addEventListener("pagehide", () => endSession(null));
window.addEventListener("pageshow", () => {
  if (!session) clearFields(); // whatever a browser restored into the fields
});
clearFields();
