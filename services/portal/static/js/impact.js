// The impact page: the zone figures the portal folds from the k-anonymous zone statistics (/v1/impact/zones),
// and the ledger's public circulation report (/v1/circulation), as figures, two bar charts (inline SVG, with
// the same figures in a table as their text alternative), a table per zone and a CSV of it made here.

import { call, callPortal, explain } from "./api.js";
import { $, downloadText, element, fillRows, formatMicro, showStatus, svg } from "./dom.js";

// The CSV's columns: the API's own field names, so a spreadsheet and the JSON say the same.
const CSV_COLUMNS = [
  "zone",
  "month",
  "kg_co2e_avoided",
  "kwh_saved",
  "kg_recycled",
  "km_cycled",
  "km_walked",
  "bike_trips",
  "walk_trips",
  "transit_trips",
  "readings",
];

let shown = null; // the zone figures on the page, which the CSV is made of

const number = (value, digits = 1) =>
  value === null || value === undefined
    ? "n/a"
    : Number(value).toLocaleString("en", { maximumFractionDigits: digits });
const city = (micro) => formatMicro(micro, "CITY");
const share = (value) => (value === null || value === undefined ? "n/a" : `${(value * 100).toFixed(1)} %`);

function card(label, value, detail) {
  const node = element("div", null, { class: "figure" });
  node.append(element("div", value, { class: "value" }), element("div", label));
  if (detail) node.append(element("div", detail, { class: "muted" }));
  return node;
}

// "2026-05" as "May 26": short enough to name every month under its bars on a phone.
function monthLabel(month) {
  const date = new Date(`${month}-01T00:00:00Z`);
  return `${date.toLocaleString("en", { month: "short", timeZone: "UTC" })} ${month.slice(2, 4)}`;
}

// A bar chart of `months` with one bar per series a month; `series` are { name, className, values, format }.
// Drawn at the container's width, so its text keeps its size on a phone.
function barChart(container, title, months, series) {
  const width = Math.max(300, Math.round(container.clientWidth || 640));
  const height = 240;
  const left = 56;
  const bottom = 36;
  const top = 16;
  const plot = height - bottom - top;
  const max = Math.max(0, ...series.flatMap((s) => s.values.map((v) => v ?? 0)));
  const scale = max > 0 ? plot / max : 0;
  const slot = (width - left - 8) / Math.max(1, months.length);
  const bar = Math.max(2, (slot * 0.8) / series.length);
  const titleId = `${container.id}-title`;
  const descId = `${container.id}-desc`;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-labelledby": `${titleId} ${descId}`,
    class: "bars",
  });
  chart.append(
    svg("title", { id: titleId }, title),
    svg("desc", { id: descId }, "The same figures are in the table \"The figures per month\" below."),
  );
  const format = series[0].format;
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plot - fraction * plot;
    chart.append(
      svg("line", { x1: left, x2: width - 4, y1: y, y2: y, class: "grid" }),
      svg("text", { x: left - 6, y: y + 4, class: "axis", "text-anchor": "end" }, format(max * fraction)),
    );
  }
  months.forEach((month, i) => {
    const x0 = left + i * slot + slot * 0.1;
    series.forEach((s, j) => {
      const value = s.values[i] ?? 0;
      const h = value * scale;
      const rect = svg("rect", { x: x0 + j * bar, y: top + plot - h, width: bar - 1, height: h, class: s.className });
      rect.append(svg("title", {}, `${s.name}, ${month}: ${s.format(value)}`));
      chart.append(rect);
    });
    // Every month is named when there is room (about 48 px a label), else every second or third.
    if (i % Math.ceil(48 / slot) === 0) {
      const x = x0 + (bar * series.length) / 2;
      chart.append(svg("text", { x, y: height - bottom + 18, class: "axis", "text-anchor": "middle" }, monthLabel(month)));
    }
  });
  const legend = element("ul", null, { class: "legend" });
  for (const s of series) {
    const item = element("li");
    item.append(element("span", null, { class: `swatch ${s.className}`, "aria-hidden": "true" }), s.name);
    legend.append(item);
  }
  container.replaceChildren(chart, legend);
}

function showFigures(impact, circulation) {
  const totals = impact?.totals;
  const months = circulation?.months ?? [];
  const paid = months.reduce((sum, m) => sum + m.paid, 0);
  const transferred = months.reduce((sum, m) => sum + m.transferred, 0);
  const local = months.reduce((sum, m) => sum + m.to_local_merchants, 0);
  const cards = [];
  if (totals) {
    cards.push(
      card("kg CO2e avoided", number(totals.kg_co2e_avoided)),
      card("Trips by bike", number(totals.bike_trips, 0), `${number(totals.km_cycled)} km`),
      card("Trips on foot", number(totals.walk_trips, 0), `${number(totals.km_walked)} km`),
      card("Transit check-ins", number(totals.transit_trips, 0)),
      card("kWh saved", number(totals.kwh_saved)),
      card("kg recycled", number(totals.kg_recycled)),
    );
  }
  if (circulation) {
    cards.push(
      card("CITY paid in rewards", city(paid)),
      card("CITY spent at local merchants", city(local), `${share(transferred ? local / transferred : null)} of the CITY spent`),
    );
  }
  $("#figures").replaceChildren(...cards);
}

function showMonths(impact, circulation) {
  const zoneMonths = new Map((impact?.by_month ?? []).map((m) => [m.month, m]));
  const cityMonths = new Map((circulation?.months ?? []).map((m) => [m.month, m]));
  const months = impact?.months ?? circulation?.months.map((m) => m.month) ?? [];
  fillRows(
    $("#months-table tbody"),
    months.map((month) => {
      const z = zoneMonths.get(month);
      const c = cityMonths.get(month);
      return [
        month,
        number(z?.kg_co2e_avoided),
        number(z?.kwh_saved),
        number(z?.kg_recycled),
        number(z?.bike_trips, 0),
        number(z?.walk_trips, 0),
        number(z?.transit_trips, 0),
        c ? city(c.paid) : "n/a",
        c ? city(c.transferred) : "n/a",
        c ? city(c.to_local_merchants) : "n/a",
        c ? share(c.local_share) : "n/a",
      ];
    }),
  );
  if (impact) {
    barChart($("#co2e-chart"), "kg CO2e avoided per month", months, [
      { name: "kg CO2e avoided", className: "series-a", values: months.map((m) => zoneMonths.get(m)?.kg_co2e_avoided), format: (v) => number(v, 0) },
    ]);
  }
  if (circulation) {
    const cityAxis = (micro) => number(micro / 1e6, 2);
    barChart($("#city-chart"), "CITY paid and spent at local merchants per month", months, [
      { name: "CITY paid in rewards", className: "series-a", values: months.map((m) => cityMonths.get(m)?.paid), format: cityAxis },
      { name: "CITY spent at local merchants", className: "series-b", values: months.map((m) => cityMonths.get(m)?.to_local_merchants), format: cityAxis },
    ]);
  }
}

function showZones(impact) {
  shown = impact;
  fillRows(
    $("#zones-table tbody"),
    impact.zones.map((z) => [
      z.zone,
      z.month,
      number(z.kg_co2e_avoided),
      number(z.kwh_saved),
      number(z.kg_recycled),
      number(z.km_cycled),
      number(z.km_walked),
      number(z.bike_trips, 0),
      number(z.walk_trips, 0),
      number(z.transit_trips, 0),
      number(z.readings, 0),
    ]),
  );
  $("#download-csv").disabled = impact.zones.length === 0;
}

function showMethod(impact) {
  $("#k-anonymity").textContent = impact.k_anonymity ?? "k";
  const policy = impact.policy;
  $("#policy-used").textContent = policy
    ? `policy ${policy.version} (hash ${policy.hash.slice(0, 16)}…), factors below`
    : "not known yet, so kg CO2e is not shown";
  const factors = (policy?.factors ?? []).map((f) => {
    const item = element("li");
    const per = f.unit ? `per ${f.unit}` : "per unit";
    item.append(element("strong", `${f.kind}, ${f.value}: ${f.kg_co2e_per_unit} kg CO2e ${per}.`), ` ${f.source}`);
    return item;
  });
  $("#factors").replaceChildren(...(factors.length ? factors : [element("li", "Not known yet.")]));
  const w = impact.windows;
  $("#windows-note").textContent =
    `Zone minutes read so far: ${w.counted} counted, ${w.suppressed} not shown (fewer than ${impact.k_anonymity ?? "k"} devices), ` +
    `${w.duplicate} published again and counted once.`;
}

// RFC 4180: a field with a comma, a quote or a line break is quoted, its quotes doubled.
function csvField(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function csvOf(impact) {
  const lines = [CSV_COLUMNS.join(",")];
  for (const row of impact.zones) lines.push(CSV_COLUMNS.map((column) => csvField(row[column])).join(","));
  return `${lines.join("\r\n")}\r\n`;
}

async function load() {
  const months = Number($("#months").value);
  const status = $("#impact-status");
  showStatus(status, "info", "Loading…");
  const [zones, circulation] = await Promise.allSettled([
    callPortal(`/v1/impact/zones?months=${months}`),
    call("ledger", `/v1/circulation?months=${months}`),
  ]);
  const impact = zones.status === "fulfilled" ? zones.value : null;
  const flows = circulation.status === "fulfilled" ? circulation.value : null;
  showFigures(impact, flows);
  showMonths(impact, flows);
  if (impact) {
    showZones(impact);
    showMethod(impact);
  }
  const problems = [
    zones.status === "rejected" ? `Zone figures: ${explain(zones.reason)}` : null,
    circulation.status === "rejected" ? `CITY figures: ${explain(circulation.reason)}` : null,
  ].filter(Boolean);
  if (problems.length) {
    showStatus(status, "bad", problems.join(" "));
    return;
  }
  const asOf = impact.newest_window_end ? `zone statistics up to ${impact.newest_window_end}` : "no zone statistics yet";
  const reading = impact.caught_up ? "" : " (still reading the zone statistics: the figures may grow)";
  showStatus(status, "good", `Figures of ${impact.months[0]} to ${impact.months.at(-1)}: ${asOf}${reading}; CITY from the ledger's first ${flows.tree_size} transactions.`);
}

$("#months").addEventListener("change", load);
$("#period-form").addEventListener("submit", (event) => event.preventDefault());
$("#download-csv").addEventListener("click", () => {
  if (!shown) return;
  const name = `smartcity-impact-${shown.months[0]}-to-${shown.months.at(-1)}.csv`;
  downloadText(name, csvOf(shown), "text/csv");
  showStatus($("#impact-status"), "info", `Downloaded ${name}: ${shown.zones.length} rows, one per zone and month.`);
});

load();
