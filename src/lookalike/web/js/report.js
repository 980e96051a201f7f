// The accuracy view: the latest evaluation report (metrics table, confusion matrix, per-category table, plots).

import { ApiError, getReport } from "./api.js";
import { $, el, setMessage } from "./dom.js";

const HEADLINE = ["precision@1", "recall@5", "recall@10", "precision@5", "precision@10", "mAP@10", "MAP@R",
  "NDCG@10"];
const PER_CATEGORY = ["precision@1", "recall@5", "mAP@10", "MAP@R"];
const EXACT = ["recall@1", "recall@5", "recall@10", "median rank", "score spread@10"];

const fmt = (value) => (typeof value === "number" ? value.toFixed(3) : "–");

function headlineColumns(rows) {
  const present = new Set(rows.flatMap((row) => Object.keys(row.overall ?? {})));
  return HEADLINE.filter((name) => present.has(name));
}

function renderMeta(report) {
  const entries = [["report", report.created], ...Object.entries(report.meta ?? {})];
  const items = entries.flatMap(([key, value]) => [
    el("dt", { text: key }),
    el("dd", { text: typeof value === "object" && value !== null ? JSON.stringify(value) : String(value) }),
  ]);
  $("#report-meta").replaceChildren(...items);
}

function renderMetrics(report) {
  const table = $("#metrics-table");
  const names = Object.keys(report.rows);
  const rows = names.map((name) => report.rows[name]);
  const columns = headlineColumns(rows);
  const best = Object.fromEntries(columns.map((c) => [c, Math.max(...rows.map((r) => r.overall?.[c] ?? -Infinity))]));
  table.tHead.replaceChildren(el("tr", {}, [
    el("th", { scope: "col", text: "Model / query set" }), el("th", { scope: "col", class: "num", text: "Queries" }),
    ...columns.map((c) => el("th", { scope: "col", class: "num", text: c })),
  ]));
  table.tBodies[0].replaceChildren(...names.map((name, i) => el("tr", { dataset: { row: name } }, [
    el("th", { scope: "row", text: name }),
    el("td", { class: "num", text: (rows[i].queries ?? "–").toLocaleString() }),
    ...columns.map((c) => {
      const value = rows[i].overall?.[c];
      const isBest = names.length > 1 && value === best[c];
      return el("td", { class: isBest ? "num best" : "num", text: fmt(value), title: isBest ? "best" : null });
    }),
  ])));
}

function renderExact(report) {
  const exact = report.exact_item ?? {};
  const names = Object.keys(exact);
  $("#exact-section").hidden = names.length === 0;
  const table = $("#exact-table");
  table.tHead.replaceChildren(el("tr", {}, [
    el("th", { scope: "col", text: "Model / photos" }), el("th", { scope: "col", class: "num", text: "Queries" }),
    ...EXACT.map((c) => el("th", { scope: "col", class: "num", text: c })),
  ]));
  const number = (c, value) => (c === "median rank" && typeof value === "number" ? String(value) : fmt(value));
  table.tBodies[0].replaceChildren(...names.map((name) => el("tr", { dataset: { row: name } }, [
    el("th", { scope: "row", text: name }),
    el("td", { class: "num", text: String(exact[name].queries ?? "–") }),
    ...EXACT.map((c) => el("td", { class: "num", text: number(c, exact[name][c]) })),
  ])));
}

function renderConfusion(row) {
  const table = $("#confusion");
  const categories = row.categories ?? [];
  const matrix = row.confusion ?? [];
  const corner = el("th", { scope: "col", class: "corner", text: "query ↓ / top-1 →" });
  const head = el("thead", {}, [el("tr", {}, [corner, ...categories.map((c) => el("th", { scope: "col", text: c }))])]);
  const body = el("tbody", {}, matrix.map((counts, i) => {
    const total = counts.reduce((a, b) => a + b, 0) || 1;
    return el("tr", {}, [el("th", { scope: "row", text: categories[i] }), ...counts.map((count, j) => {
      const share = count / total;
      const shade = `background:rgba(47,111,143,${(share * 0.9).toFixed(3)})`;
      const style = `${shade};color:${share > 0.55 ? "#fff" : "inherit"}`;
      return el("td", { class: i === j ? "num diag" : "num", style, title: `${(share * 100).toFixed(1)}%`,
        text: String(count) });
    })]);
  }));
  table.replaceChildren(head, body);
}

function renderPerCategory(row) {
  const table = $("#per-category");
  const perCategory = row.per_category ?? {};
  table.tHead.replaceChildren(el("tr", {}, [el("th", { scope: "col", text: "Category" }),
    el("th", { scope: "col", class: "num", text: "Queries" }),
    ...PER_CATEGORY.map((c) => el("th", { scope: "col", class: "num", text: c }))]));
  table.tBodies[0].replaceChildren(...Object.entries(perCategory).map(([name, values]) => el("tr", {}, [
    el("th", { scope: "row", text: name }), el("td", { class: "num", text: String(values.queries ?? "–") }),
    ...PER_CATEGORY.map((c) => el("td", { class: "num", text: fmt(values[c]) })),
  ])));
}

function renderFiles(report) {
  const files = report.files ?? {};
  const version = encodeURIComponent(report.created ?? "");
  const images = { "#plot-curves": "curves.png", "#plot-per-category": "per_category.png",
    "#plot-confusion": "confusion.png" };
  for (const [selector, name] of Object.entries(images)) {
    const img = $(selector);
    img.closest("figure").hidden = !files[name];
    if (files[name]) img.src = `${files[name]}?v=${version}`;
  }
  $("#report-md").href = files["report.md"] ?? "#";
  $("#report-json").href = files["report.json"] ?? "#";
}

export function renderReport(report) {
  const first = Object.values(report.rows ?? {})[0];
  renderMeta(report);
  renderExact(report);
  renderMetrics(report);
  $("#confusion-title").textContent = `Confusion matrix (${Object.keys(report.rows)[0]})`;
  if (first) {
    renderConfusion(first);
    renderPerCategory(first);
  }
  renderFiles(report);
}

export async function loadReport() {
  const loading = $("#report-loading");
  const empty = $("#report-empty");
  const content = $("#report");
  const message = $("#report-message");
  loading.hidden = false;
  setMessage(message, "");
  try {
    const report = await getReport();
    renderReport(report);
    empty.hidden = true;
    content.hidden = false;
  } catch (error) {
    content.hidden = true;
    if (error instanceof ApiError && error.status === 404) empty.hidden = false;
    else setMessage(message, error.message);
  } finally {
    loading.hidden = true;
  }
}
