// One colour per category, the same in result cards, history and the embedding map.

const PALETTE = [
  "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
  "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#7f8c8d",
  "#2f6f8f", "#c8553d", "#588157", "#8e6c8a", "#d4a373",
];

let order = new Map();

/** Fix the colour order from the catalog's sorted category names. */
export function setCategories(names) {
  order = new Map(names.map((name, index) => [name, index]));
}

export function categoryColor(name) {
  if (name === null || name === undefined || name === "") return "#98a2b3";
  if (!order.has(name)) order.set(name, order.size);
  return PALETTE[order.get(name) % PALETTE.length];
}
