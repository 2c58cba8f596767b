// Notices: the inbox, by a request signed here. It names the wallet's AID holder key, so that notices to the
// AID holders of the person's zone reach them (identity asks the ledger whether that key holds AID).

import { $, element, showStatus } from "./dom.js";
import { busy, said, short, wallet, when } from "./wallet-page.js";
import { selfRequest } from "./wallet-requests.js";

export async function loadNotices() {
  const status = $("#notices-status");
  try {
    const holder = wallet.aid ? { aid_holder: wallet.aid.did } : {};
    const inbox = await selfRequest(wallet, "identity", "/v1/notices/inbox", "read-notices", holder);
    $("#notices").replaceChildren(
      ...inbox.notices.map((notice) => {
        const item = element("li");
        item.append(
          element("h3", notice.title),
          element("p", notice.body, { class: "wallet-notice-body" }),
          element("p", `Posted ${when(notice.posted_at)}${notice.expires_at ? `, until ${when(notice.expires_at)}` : ""}, by ${short(notice.sender, 24)}`, { class: "muted" }),
        );
        return item;
      }),
    );
    $("#notices-empty").hidden = inbox.notices.length > 0;
    status.hidden = true;
  } catch (error) {
    showStatus(status, "bad", `Your notices could not be read: ${said(error)}`);
  }
}

$("#notices-refresh").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  busy(button, true);
  try {
    await loadNotices();
  } finally {
    busy(button, false);
  }
});
