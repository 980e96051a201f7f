// The ranked results grid: one card per result, best first; a card click asks for "more like this";
// thumbs up / down on a card mark it for the next refinement.

import { categoryColor } from "./colors.js";
import { el, formatPercent, formatScore } from "./dom.js";

function confidenceLevel(confidence) {
  if (confidence >= 0.7) return { key: "high", label: "Strong match" };
  if (confidence >= 0.35) return { key: "medium", label: "Possible match" };
  return { key: "low", label: "Weak match" };
}

function categoryChip(category) {
  return el("span", { class: "chip" }, [
    el("span", { class: "dot", style: `background:${categoryColor(category)}`, "aria-hidden": "true" }),
    el("span", { class: "chip-text", text: category ?? "uncategorised" }),
  ]);
}

function scoreBar(score) {
  const width = Math.max(0, Math.min(1, score)) * 100;
  return el("span", { class: "score" }, [
    el("span", { class: "score-label", text: "Similarity" }),
    el("span", { class: "score-bar", "aria-hidden": "true" }, [el("span", { style: `width:${width.toFixed(1)}%` })]),
    el("span", { class: "score-value", text: formatScore(score) }),
  ]);
}

/** The cosine similarity (the score also holds the colour penalty where colour ranked the results). */
const similarityOf = (result) => result.similarity ?? result.score;

function resultLabel(result) {
  const what = result.product?.title ? `${result.product.title}, ` : "";
  return `Rank ${result.rank}: ${what}${result.category ?? "uncategorised"}, item ${result.id}, similarity `
    + `${formatScore(similarityOf(result))}, confidence ${formatPercent(result.confidence)}. Show more like this.`;
}

const SVG = "http://www.w3.org/2000/svg";

function thumbIcon() {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", "M3 10h3.5v10H3zM8.5 20h8.6a2 2 0 0 0 2-1.6l1.3-6.2A1.8 1.8 0 0 0 18.6 10H14l.7-3.8"
    + "a1.7 1.7 0 0 0-3.1-1.2L8.5 10z");
  svg.append(path);
  return svg;
}

function feedbackButtons(result, feedback) {
  if (!feedback) return null;
  const current = feedback.get(result.id);
  const button = (kind, label) => el("button", {
    type: "button", class: `fb-btn fb-${kind}`, title: label, "aria-label": `${label}: item ${result.id}`,
    "aria-pressed": String(current === kind), dataset: { id: result.id, kind },
    onclick: () => feedback.toggle(result.id, kind),
  }, [thumbIcon()]);
  return el("div", { class: "feedback" }, [button("like", "More like this"), button("dislike", "Less like this")]);
}

/** "EUR 21.00", or the price alone without a currency; null without a price. */
function formatPrice(product) {
  if (typeof product.price !== "number") return null;
  if (!product.currency) return product.price.toFixed(2);
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: product.currency }).format(product.price);
  } catch {
    return `${product.currency} ${product.price.toFixed(2)}`;
  }
}

/** A product's title, price and shop link, under its card (a link cannot sit inside the card's button). */
function productInfo(result) {
  const product = result.product;
  if (!product) return null;
  const link = typeof product.link === "string" && /^https?:\/\//i.test(product.link) ? product.link : null;
  const price = formatPrice(product);
  return el("div", { class: "product-info" }, [
    el("span", { class: "product-title", text: product.title ?? result.sku }),
    product.brand ? el("span", { class: "product-brand muted", text: String(product.brand) }) : null,
    price ? el("span", { class: "product-price", text: price }) : null,
    link ? el("a", { class: "product-link", href: link, target: "_blank", rel: "noopener noreferrer",
      text: "View in shop", "aria-label": `View ${product.title ?? result.sku} in the shop` }) : null,
  ]);
}

export function resultCard(result, onSelect, feedback = null) {
  const level = confidenceLevel(result.confidence);
  const subtitle = result.sku ? `SKU ${result.sku}`
    : result.item_id ? `Item ${result.id} · ${result.item_id}` : `Item ${result.id}`;
  const button = el("button", {
    type: "button", class: "result-card", "aria-label": resultLabel(result), title: "Show more like this",
    dataset: {
      rank: result.rank, id: result.id, score: result.score, similarity: similarityOf(result),
      confidence: result.confidence,
      category: result.category ?? "",
      sku: result.sku ?? undefined,
    },
    onclick: () => onSelect(result),
  }, [
    el("span", { class: "thumb" }, [
      el("img", { src: result.thumbnail_url, alt: "", loading: "lazy", decoding: "async", width: 256, height: 256 }),
      el("span", { class: "rank-badge", text: `#${result.rank}` }),
    ]),
    el("span", { class: "card-body" }, [
      el("span", { class: "card-row" }, [
        categoryChip(result.category),
        el("span", { class: `confidence confidence-${level.key}`, title: level.label },
          `${formatPercent(result.confidence)} conf.`),
      ]),
      scoreBar(similarityOf(result)),
      el("span", { class: "card-sub muted", text: subtitle }),
    ]),
  ]);
  return el("li", { class: "result-item" }, [button, productInfo(result), feedbackButtons(result, feedback)]);
}

/** `feedback` (optional): {get(id) -> "like"|"dislike"|undefined, toggle(id, kind)} for the thumb buttons. */
export function renderResults(container, results, onSelect, feedback = null) {
  container.replaceChildren(...results.map((result) => resultCard(result, onSelect, feedback)));
}

/** Placeholder cards while a search runs (not `.result-card`: they are not results). */
export function renderSkeletons(container, count) {
  const cards = Array.from({ length: Math.min(count, 12) }, () => el("li", { "aria-hidden": "true" }, [
    el("div", { class: "skeleton-card" }, [
      el("div", { class: "skeleton-thumb" }), el("div", { class: "skeleton-line" }),
      el("div", { class: "skeleton-line short" }),
    ]),
  ]));
  container.replaceChildren(...cards);
}
