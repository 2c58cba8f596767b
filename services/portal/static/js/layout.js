// The header every page shares: the site's name and its pages, the current one marked for screen readers.

const PAGES = [
  ["home", "/", "Home"],
  ["explorer", "/explorer.html", "Explorer"],
  ["wallet", "/wallet.html", "Wallet"],
  ["kiosk", "/kiosk.html", "Kiosk"],
  ["impact", "/impact.html", "Impact"],
  ["directory", "/directory.html", "Directory"],
];

const current = document.body.dataset.page;
const header = document.createElement("header");
header.className = "site";
const brand = document.createElement("a");
brand.className = "brand";
brand.href = "/";
brand.textContent = "Smart City";
const nav = document.createElement("nav");
nav.setAttribute("aria-label", "Pages");
const list = document.createElement("ul");
for (const [name, href, label] of PAGES) {
  const item = document.createElement("li");
  const link = document.createElement("a");
  link.href = href;
  link.textContent = label;
  if (name === current) link.setAttribute("aria-current", "page");
  item.append(link);
  list.append(item);
}
nav.append(list);
header.append(brand, nav);
document.body.querySelector(".skip").after(header);

// A wide table scrolls in its own box on a phone: the box takes keyboard focus (so it can be scrolled without
// a mouse) and is a named region, after its section's heading.
for (const wrap of document.querySelectorAll(".table-wrap")) {
  wrap.tabIndex = 0;
  wrap.setAttribute("role", "region");
  const heading = wrap.closest("section")?.querySelector("h2");
  wrap.setAttribute("aria-label", heading ? `${heading.textContent} (table)` : "Table");
}
