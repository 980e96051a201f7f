// Recent searches with their top results; a thumbnail click asks for "more like this".

import { thumbnailUrl } from "./api.js";
import { el, formatScore, timeAgo } from "./dom.js";

const TOP = 4;

function summary(entry) {
  const parts = [`k=${entry.k}`];
  if (entry.category) parts.push(entry.category);
  parts.push(`${Math.round(entry.took_ms)} ms`);
  parts.push(timeAgo(entry.created_at));
  return parts.join(" · ");
}

function thumbButton(result, onSelect) {
  return el("button", {
    type: "button", class: "history-thumb",
    "aria-label": `More like item ${result.id} (${result.category ?? "uncategorised"}, `
      + `similarity ${formatScore(result.score)})`,
    title: `Item ${result.id} · ${result.category ?? ""} · ${formatScore(result.score)}`,
    onclick: () => onSelect(result),
  }, [el("img", { src: thumbnailUrl(result.id), alt: "", loading: "lazy", width: 48, height: 48 })]);
}

function historyItem(entry, onSelect) {
  return el("li", { class: "history-item", dataset: { id: entry.id } }, [
    el("div", { class: "history-main" }, [
      el("span", { class: "history-query", text: entry.query, title: entry.query }),
      el("span", { class: "history-meta muted", text: summary(entry) }),
    ]),
    el("div", { class: "history-thumbs" }, entry.results.slice(0, TOP).map((r) => thumbButton(r, onSelect))),
  ]);
}

export function renderHistory(list, empty, entries, onSelect) {
  list.replaceChildren(...entries.map((entry) => historyItem(entry, onSelect)));
  empty.hidden = entries.length > 0;
}
