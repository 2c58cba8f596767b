// Devices: the wallet's devices, and a device's own registration signed here as its owner.

import { call } from "./api.js";
import { $, element, fillRows, showStatus } from "./dom.js";
import { busy, kindTitle, said, short, wallet } from "./wallet-page.js";
import { InputError, ownerSignedRegistration, signedGet } from "./wallet-requests.js";

export async function loadDevices() {
  try {
    const answer = await signedGet(wallet, "ingest", "/v1/devices?include_revoked=true");
    fillRows(
      $("#devices tbody"),
      answer.devices.map((device) => [element("code", short(device.device_id, 24)), kindTitle(device.kind), device.zone, device.status]),
    );
    $("#devices-empty").hidden = answer.devices.length > 0;
  } catch (error) {
    showStatus($("#device-status"), "bad", `Your devices could not be read: ${said(error)}`);
  }
}

$("#device-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = $("#device-status");
  const button = event.submitter ?? $("#device-form button");
  busy(button, true);
  try {
    const registration = await ownerSignedRegistration(wallet, $("#device-registration").value);
    await call("ingest", "/v1/devices", { method: "POST", body: registration });
    showStatus(status, "good", `Device ${registration.device_id} is registered to this wallet (${kindTitle(registration.kind)}, zone ${registration.zone}).`);
    $("#device-form").reset();
    loadDevices();
  } catch (error) {
    showStatus(status, "bad", `Not registered. ${error instanceof InputError ? error.message : said(error)}`);
  } finally {
    busy(button, false);
  }
});
