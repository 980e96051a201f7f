// Filter controls built from the catalog's facets: a checkbox per value of each attribute with few values (each
// with its count), a min-max range for each numeric one, "only" for yes/no ones. `value()` is the filter to search
// with (null for none); counts follow the facets of each answer.

import { el } from "./dom.js";

// Not offered as filters: a single currency, availability (said by in_stock), and the bookkeeping columns of an
// imported dataset (its row index, its class number: the category says it in words).
const HIDDEN = new Set(["currency", "availability", "index", "label"]);

function label(name) {
  return name.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

export function createFilters({ container, onChange }) {
  const groups = new Map(); // name -> {kind: "values" | "range" | "flag", inputs...}
  let timer = null;

  const changed = () => {
    clearTimeout(timer);
    timer = setTimeout(onChange, 250); // one search for a burst of changes (typing a price)
  };

  function valuesGroup(name, values) {
    const boxes = values.map((v) => el("input", {
      type: "checkbox", value: String(v.value), dataset: { filter: name }, onchange: changed,
    }));
    const counts = values.map((v) => el("span", { class: "muted facet-count", text: `(${v.count})` }));
    const body = el("div", { class: "filter-values" }, values.map((v, i) => el("label", { class: "check filter-value" },
      [boxes[i], el("span", { text: String(v.value) }), counts[i]])));
    groups.set(name, { kind: "values", boxes, counts, values: values.map((v) => String(v.value)) });
    return el("fieldset", { class: "filter-group", dataset: { filter: name } },
      [el("legend", { text: label(name) }), body]);
  }

  function flagGroup(name, values) {
    const yes = values.find((v) => v.value === true);
    const box = el("input", { type: "checkbox", dataset: { filter: name }, onchange: changed });
    const count = el("span", { class: "muted facet-count", text: `(${yes ? yes.count : 0})` });
    groups.set(name, { kind: "flag", box, count });
    return el("label", { class: "check filter-flag", dataset: { filter: name } },
      [box, el("span", { text: `${label(name)} only` }), count]);
  }

  function rangeGroup(name, ranges) {
    const input = (which) => el("input", {
      type: "number", inputmode: "decimal", step: "any", min: "0", placeholder: which, "aria-label": `${label(name)} ${which}`,
      dataset: { filter: name, bound: which }, oninput: changed,
    });
    const low = input("min");
    const high = input("max");
    const note = el("p", { class: "muted small filter-note" });
    groups.set(name, { kind: "range", low, high, note });
    setRangeNote(note, ranges);
    return el("fieldset", { class: "filter-group", dataset: { filter: name } },
      [el("legend", { text: label(name) }), el("div", { class: "filter-range" }, [low, el("span", { text: "–" }), high]),
        note]);
  }

  function setRangeNote(note, ranges) {
    note.textContent = ranges.filter((r) => r.count).map((r) => {
      if (r.from === null) return `under ${r.to}: ${r.count}`;
      if (r.to === null) return `${r.from}+: ${r.count}`;
      return `${r.from}–${r.to}: ${r.count}`;
    }).join(" · ");
  }

  return {
    /** Build the controls from GET /api/facets (the category select stays the form's own). */
    build(facets) {
      groups.clear();
      const parts = [];
      for (const [name, values] of Object.entries(facets.values)) {
        if (HIDDEN.has(name) || values.length < 2 && typeof values[0]?.value !== "boolean") continue;
        parts.push(typeof values[0]?.value === "boolean" ? flagGroup(name, values) : valuesGroup(name, values));
      }
      for (const [name, ranges] of Object.entries(facets.ranges)) {
        if (!HIDDEN.has(name)) parts.push(rangeGroup(name, ranges));
      }
      container.replaceChildren(...parts);
      container.hidden = parts.length === 0;
    },

    /** The filter object for the API, or null when nothing is chosen. */
    value() {
      const filter = {};
      for (const [name, group] of groups) {
        if (group.kind === "values") {
          const chosen = group.boxes.filter((b) => b.checked).map((b) => b.value);
          if (chosen.length) filter[name] = chosen;
        } else if (group.kind === "flag") {
          if (group.box.checked) filter[name] = true;
        } else {
          const range = {};
          if (group.low.value !== "" && Number.isFinite(Number(group.low.value))) range.gte = Number(group.low.value);
          if (group.high.value !== "" && Number.isFinite(Number(group.high.value))) range.lte = Number(group.high.value);
          if (Object.keys(range).length) filter[name] = range;
        }
      }
      return Object.keys(filter).length ? filter : null;
    },

    /** Check the controls a filter names (from the page's address). */
    set(filter) {
      for (const [name, condition] of Object.entries(filter || {})) {
        const group = groups.get(name);
        if (!group) continue;
        if (group.kind === "values") {
          const wanted = new Set([].concat(condition).map((v) => String(v).toLowerCase()));
          for (const box of group.boxes) box.checked = wanted.has(box.value.toLowerCase());
        } else if (group.kind === "flag") {
          group.box.checked = condition === true;
        } else {
          group.low.value = condition.gte ?? condition.gt ?? "";
          group.high.value = condition.lte ?? condition.lt ?? "";
        }
      }
    },

    /** Show the counts of an answer's facets (items matching the filter). */
    counts(facets) {
      if (!facets) return;
      for (const [name, group] of groups) {
        if (group.kind === "values") {
          const by = new Map((facets.values[name] || []).map((v) => [String(v.value), v.count]));
          group.values.forEach((value, i) => { group.counts[i].textContent = `(${by.get(value) ?? 0})`; });
        } else if (group.kind === "flag") {
          const yes = (facets.values[name] || []).find((v) => v.value === true);
          group.count.textContent = `(${yes ? yes.count : 0})`;
        } else if (facets.ranges[name]) {
          setRangeNote(group.note, facets.ranges[name]);
        }
      }
    },
  };
}
