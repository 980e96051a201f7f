// The REST API, one function per endpoint. Errors carry the API's `detail` message.

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function describe(status, body) {
  if (body && typeof body.detail === "string") return body.detail;
  if (status === 413) return "The file is too large.";
  if (status >= 500) return `The server had a problem (HTTP ${status}). Please try again.`;
  return `The request failed (HTTP ${status}).`;
}

const KEY_COOKIE = "lookalike_key";

/** Ask for the server's read key (LOOKALIKE_READ_TOKENS) and keep it in a cookie, which every request, images
 * included, then carries. False when the shopper gives none. */
let keyAsked = false; // once per page: the page's first requests all answer 401 together

function askForKey() {
  if (keyAsked) return document.cookie.split("; ").some((c) => c.startsWith(`${KEY_COOKIE}=`));
  keyAsked = true;
  const key = window.prompt("This Lookalike server needs a key to search. Key:");
  if (!key) return false;
  document.cookie = `${KEY_COOKIE}=${encodeURIComponent(key.trim())}; path=/; SameSite=Strict`;
  return true;
}

/** fetch + JSON; throws ApiError for an HTTP error, lets AbortError through. A 401 asks for the read key once. */
export async function request(url, options = {}, asked = false) {
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" }, ...options });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "Can't reach the Lookalike server. Is it running?");
  }
  const body = await response.json().catch(() => null);
  if (response.status === 401 && !asked && askForKey()) return request(url, options, true);
  if (!response.ok) throw new ApiError(response.status, describe(response.status, body));
  return { status: response.status, body };
}

/** Search by one image, or several (`extras`: more {blob, name}) for what they share. */
/** The search options, appended to `form` (after the files, so a file is a request's first part). */
function searchForm({ k, category, dedupe, filter }, form = new FormData()) {
  form.append("k", String(k));
  form.append("dedupe", String(Boolean(dedupe)));
  form.append("group_by", "product");
  form.append("facets", "true");
  if (category) form.append("category", category);
  if (filter) form.append("filter", JSON.stringify(filter));
  return form;
}

export async function searchImage(blob, filename, { extras = [], signal, ...options }) {
  const files = new FormData();
  files.append("file", blob, filename);
  for (const extra of extras) files.append("file", extra.blob, extra.name);
  return (await request("/api/search", { method: "POST", body: searchForm(options, files), signal })).body;
}

/** The query of an earlier search again (with other options: a new filter), without uploading anything. */
export async function searchAgain(queryId, { signal, ...options }) {
  const form = searchForm(options);
  form.append("query_id", String(queryId));
  return (await request("/api/search", { method: "POST", body: form, signal })).body;
}

export async function similarTo(id, { k, category, dedupe, filter, signal }) {
  const params = new URLSearchParams({
    k: String(k), dedupe: String(Boolean(dedupe)), group_by: "product", facets: "true",
  });
  if (category) params.set("category", category);
  if (filter) params.set("filter", JSON.stringify(filter));
  return (await request(`/api/items/${encodeURIComponent(id)}/similar?${params}`, { signal })).body;
}

/** Search again from a stored query, toward the liked results and away from the disliked ones. */
export async function refineSearch(queryId, { liked, disliked, k, category, dedupe, filter, signal }) {
  const body = JSON.stringify({
    query_id: queryId, liked, disliked, k, category: category || null, dedupe, group_by: "product",
    filter: filter || null, facets: true,
  });
  return (await request("/api/search/refine", {
    method: "POST", body, signal, headers: { Accept: "application/json", "Content-Type": "application/json" },
  })).body;
}

export const getRecommendations = async (k = 8) => (await request(`/api/recommendations?k=${k}`)).body;
export async function getDuplicates(threshold) {
  const query = threshold ? `?threshold=${encodeURIComponent(threshold)}` : "";
  return (await request(`/api/duplicates${query}`)).body;
}
export const getCategories = async () => (await request("/api/categories")).body;
export const getFacets = async () => (await request("/api/facets")).body;
export const getStats = async () => (await request("/api/stats")).body;
export const getHistory = async (limit = 8) => (await request(`/api/history?limit=${limit}`)).body;
export const getEmbeddingMap = async () => request("/api/embedding-map");
export const getReport = async () => (await request("/api/report")).body;

export const thumbnailUrl = (id) => `/api/items/${encodeURIComponent(id)}/image?size=thumb`;
