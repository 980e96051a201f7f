// Duplicate listings: groups of near-identical catalog items side by side, at the calibrated (or a chosen)
// similarity threshold.

import { getDuplicates } from "./api.js";
import { $, el, formatScore, setMessage } from "./dom.js";

function itemFigure(item, onSelect) {
  return el("li", {}, [el("button", {
    type: "button", class: "dup-item", dataset: { id: item.id },
    "aria-label": `Item ${item.id} (${item.category ?? "uncategorised"}). Show more like it.`,
    onclick: () => onSelect(item.id),
  }, [
    el("img", { src: item.thumbnail_url, alt: "", loading: "lazy", width: 120, height: 120 }),
    el("span", { class: "dup-caption" }, [
      el("strong", { text: `Item ${item.id}` }),
      el("span", { class: "muted", text: [item.category, item.item_id, item.metadata?.filename].filter(Boolean)
        .join(" · ") }),
    ]),
  ])]);
}

function groupCard(group, index, onSelect) {
  const range = group.min_score === group.max_score ? formatScore(group.min_score)
    : `${formatScore(group.min_score)}–${formatScore(group.max_score)}`;
  return el("li", { class: "dup-group", dataset: { size: group.items.length } }, [
    el("p", { class: "dup-head" }, [
      el("strong", { text: `Group ${index + 1}` }),
      el("span", { class: "muted", text: ` · ${group.items.length} listings · similarity ${range}` }),
    ]),
    el("ol", { class: "dup-items" }, group.items.map((item) => itemFigure(item, onSelect))),
  ]);
}

export function createDuplicatesView({ onSelect }) {
  const ui = {
    form: $("#dup-form"), threshold: $("#dup-threshold"), list: $("#dup-groups"), summary: $("#dup-summary"),
    status: $("#dup-status"), message: $("#dup-message"), empty: $("#dup-empty"),
  };
  let loaded = false;
  let inFlight = false;

  async function load() {
    if (inFlight) return;
    inFlight = true;
    ui.status.hidden = false;
    setMessage(ui.message, "");
    ui.list.setAttribute("aria-busy", "true");
    try {
      const body = await getDuplicates(loaded ? ui.threshold.value : null);
      loaded = true;
      ui.threshold.value = String(body.threshold);
      ui.list.replaceChildren(...body.groups.map((group, i) => groupCard(group, i, onSelect)));
      const c = body.calibration;
      const shown = body.groups.length < body.groups_total ? ` (the ${body.groups.length} largest shown)` : "";
      ui.summary.textContent = `${body.groups_total} group${body.groups_total === 1 ? "" : "s"}, `
        + `${body.items_total} listings at similarity ≥ ${formatScore(body.threshold)} or matched pixel by pixel${shown}. `
        + `Calibrated default `
        + `${formatScore(c.threshold)}: copies score ≥ ${formatScore(c.copy_low)}, different items ≤ `
        + `${formatScore(c.distinct_high)}${c.embedding_separable ? "" : " (they overlap: the pixels decide below it)"}; `
        + `${Math.round(100 * c.copies_found)}% of test copies found.`;
      ui.empty.hidden = body.groups.length > 0;
    } catch (error) {
      setMessage(ui.message, error.message || String(error));
    } finally {
      inFlight = false;
      ui.status.hidden = true;
      ui.list.setAttribute("aria-busy", "false");
    }
  }

  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  return { show: () => { if (!loaded) load(); } };
}
