// "For you": items picked from this shopper's taste (past searches and likes), not shown to them before.

import { getRecommendations } from "./api.js";
import { el, formatScore } from "./dom.js";

const COUNT = 8;

function tile(result, onSelect) {
  return el("li", {}, [el("button", {
    type: "button", class: "for-you-item", dataset: { id: result.id, category: result.category ?? "" },
    title: `Item ${result.id} · ${result.category ?? ""}`,
    "aria-label": `Recommended: item ${result.id} (${result.category ?? "uncategorised"}, `
      + `similarity ${formatScore(result.score)}). Show more like it.`,
    onclick: () => onSelect(result.id),
  }, [
    el("img", { src: result.thumbnail_url, alt: "", loading: "lazy", width: 96, height: 96 }),
    el("span", { class: "for-you-caption", text: result.category ?? `Item ${result.id}` }),
  ])]);
}

export function createForYou({ section, list, note, onSelect }) {
  async function refresh() {
    try {
      const body = await getRecommendations(COUNT);
      list.replaceChildren(...body.results.map((result) => tile(result, onSelect)));
      const basis = [`${body.searches} search${body.searches === 1 ? "" : "es"}`];
      if (body.likes) basis.push(`${body.likes} like${body.likes === 1 ? "" : "s"}`);
      note.textContent = `From your ${basis.join(" and ")}; things you haven't seen yet.`;
      section.hidden = body.results.length === 0;
    } catch {
      section.hidden = true; // recommendations are a nicety: never an error on the page
    }
  }
  return { refresh };
}
