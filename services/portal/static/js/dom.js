// Small DOM helpers: text is always set as text (never as HTML), so nothing a service returns can inject markup.

export const $ = (selector) => document.querySelector(selector);

export function element(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

export function fillRows(tbody, rows) {
  tbody.replaceChildren(
    ...rows.map((cells) => {
      const row = element("tr");
      cells.forEach((cell, i) => {
        const node = i === 0 && cells.length === 2 ? element("th", null, { scope: "row" }) : element("td");
        if (cell instanceof Node) node.append(cell);
        else node.textContent = cell === undefined || cell === null ? "" : String(cell);
        row.append(node);
      });
      return row;
    }),
  );
}

export function showStatus(node, kind, text) {
  node.hidden = false;
  node.className = `status ${kind}`;
  node.textContent = text;
}

export function hideStatus(node) {
  node.hidden = true;
  node.textContent = "";
}

export function formatMicro(amount, currency) {
  const sign = amount < 0 ? "−" : "";
  const units = Math.abs(amount) / 1e6;
  return `${sign}${units.toLocaleString("en", { maximumFractionDigits: 6 })} ${currency}`;
}

// An SVG element (charts are drawn as inline SVG); attributes are set as attributes, never parsed as markup.
export function svg(tag, attributes = {}, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// Offer `text` as a file named `name`, made in the browser (nothing is sent anywhere).
export function downloadText(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = element("a", null, { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
