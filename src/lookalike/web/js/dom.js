// Small DOM helpers shared by every view.

export const $ = (selector, root = document) => root.querySelector(selector);

/** Create an element: el("div", {class: "x", dataset: {id: 1}}, [child, "text"]). */
export function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of [].concat(children)) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}


/** Show `text` in an alert box (role=alert), or hide it when text is empty. */
export function setMessage(node, text, kind = "error") {
  node.textContent = text || "";
  node.dataset.kind = kind;
  node.hidden = !text;
}

export const formatScore = (value) => Number(value).toFixed(3);
export const formatPercent = (value) => `${Math.round(Number(value) * 100)}%`;

/** "just now", "5 min ago", ... for an ISO time (a time without a zone is UTC). */
export function timeAgo(iso) {
  const stamp = /[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : `${iso}Z`;
  const seconds = Math.max(0, (Date.now() - new Date(stamp).getTime()) / 1000);
  if (!Number.isFinite(seconds)) return "";
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(stamp).toLocaleDateString();
}
