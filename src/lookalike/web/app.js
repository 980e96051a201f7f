// Lookalike dashboard: wires the query input, search, feedback, results, "For you", history, embedding map,
// duplicates and accuracy views.

import {
  ApiError, getCategories, getFacets, getHistory, getStats, refineSearch, searchAgain, searchImage, similarTo,
  thumbnailUrl,
} from "./js/api.js";
import { setCategories } from "./js/colors.js";
import { $, el, setMessage } from "./js/dom.js";
import { createDuplicatesView } from "./js/duplicates.js";
import { createFilters } from "./js/filters.js";
import { createForYou } from "./js/foryou.js";
import { renderHistory } from "./js/history.js";
import { createMap } from "./js/map.js";
import { createQueryInput } from "./js/query.js";
import { loadReport } from "./js/report.js";
import { renderResults, renderSkeletons } from "./js/results.js";
import { shopperId } from "./js/shopper.js";
import { createTabs } from "./js/tabs.js";

const HISTORY_LIMIT = 6;

const ui = {
  form: $("#search-form"),
  searchButton: $("#search-btn"),
  k: $("#k"),
  category: $("#category"),
  dedupe: $("#dedupe"),
  refine: $("#refine-btn"),
  feedbackHint: $("#feedback-hint"),
  results: $("#results"),
  resultsArea: $("#results-area"),
  resultsEmpty: $("#results-empty"),
  title: $("#results-title"),
  meta: $("#results-meta"),
  loading: $("#loading"),
  loadingText: $("#loading-text"),
  message: $("#message"),
  history: $("#history"),
  historyEmpty: $("#history-empty"),
  stats: $("#catalog-stats"),
};

const state = {
  action: null, // what produced the results on screen: {type: "upload", name} or {type: "similar", id}
  controller: null, // aborts the search in flight when a newer one starts
  catalogEmpty: false,
  queryId: null, // the search on screen, which feedback refines
  feedback: new Map(), // result id -> "like" | "dislike"
  lastQuery: null, // the last image search ({id, name}), which a changed option or filter runs again
};

const query = createQueryInput({
  onReady: () => {
    state.lastQuery = null; // a new image: the next search uploads it
    ui.searchButton.disabled = false;
    setMessage(ui.message, "");
  },
  onError: (text) => setMessage(ui.message, text, "info"),
});

const map = createMap({ onSelect: (id) => { tabs.show("search"); moreLikeThis(id); } });
const duplicates = createDuplicatesView({ onSelect: (id) => { tabs.show("search"); moreLikeThis(id); } });
const forYou = createForYou({
  section: $("#for-you"), list: $("#for-you-list"), note: $("#for-you-note"), onSelect: (id) => moreLikeThis(id),
});

const tabs = createTabs($(".tabs"), (view) => {
  map.hideHover();
  if (view === "map") map.show();
  if (view === "duplicates") duplicates.show();
  if (view === "accuracy") loadReport();
});

// ---- search ---------------------------------------------------------------------------------------------

const filters = createFilters({ container: $("#filters"), onChange: () => rerun() });

const options = () => ({
  k: Number(ui.k.value), category: ui.category.value || null, dedupe: ui.dedupe.checked, filter: filters.value(),
});

/** Keep the search on screen in the page's address (its query id and options), so it can be shared or reloaded. */
function remember(queryId) {
  const params = new URLSearchParams();
  const { k, category, filter } = options();
  if (queryId !== null && queryId !== undefined) params.set("q", String(queryId));
  params.set("k", String(k));
  if (category) params.set("category", category);
  if (filter) params.set("filter", JSON.stringify(filter));
  history.replaceState(null, "", `${location.pathname}?${params}${location.hash}`);
}

// ---- feedback: thumbs up / down on result cards, then Refine------------------------------------------------

const feedback = {
  get: (id) => state.feedback.get(id),
  toggle(id, kind) {
    if (state.feedback.get(id) === kind) state.feedback.delete(id);
    else state.feedback.set(id, kind);
    for (const button of ui.results.querySelectorAll(`.fb-btn[data-id="${id}"]`)) {
      button.setAttribute("aria-pressed", String(state.feedback.get(id) === button.dataset.kind));
    }
    updateRefine();
  },
};

function marked(kind) {
  return [...state.feedback].filter(([, value]) => value === kind).map(([id]) => id);
}

function updateRefine() {
  const count = state.feedback.size;
  const nothingToMark = state.queryId === null || !ui.results.querySelector(".result-card");
  ui.refine.hidden = nothingToMark;
  ui.feedbackHint.hidden = nothingToMark || count > 0;
  ui.refine.disabled = count === 0;
  ui.refine.textContent = count ? `Refine (${marked("like").length} more like, ${marked("dislike").length} less like)`
    : "Refine";
}

function refine(action = null) {
  const chosen = action ?? { type: "refine", queryId: state.queryId, liked: marked("like"), disliked: marked("dislike") };
  if (chosen.queryId === null || !(chosen.liked.length + chosen.disliked.length)) return undefined;
  return run(chosen, (signal) => refineSearch(chosen.queryId, {
    ...options(), liked: chosen.liked, disliked: chosen.disliked, signal,
  }), "Refining with your feedback…");
}

function setLoading(active, text = "Searching the catalog…") {
  ui.loading.hidden = !active;
  ui.loadingText.textContent = text;
  ui.results.setAttribute("aria-busy", String(active));
  ui.form.setAttribute("aria-busy", String(active));
}

function startSearch(action, text) {
  state.controller?.abort();
  state.controller = new AbortController();
  setMessage(ui.message, "");
  ui.resultsEmpty.hidden = true;
  setHeading(action, "Searching…");
  renderSkeletons(ui.results, options().k);
  setLoading(true, text);
  revealResults();
  return state.controller;
}

function describeResults(response) {
  const count = response.results.length;
  const parts = [`${count} result${count === 1 ? "" : "s"}`, `${Math.round(response.took_ms)} ms`];
  if (response.category) parts.push(`only ${response.category}`);
  if (response.filter) parts.push(`${response.matching.toLocaleString()} match the filters`);
  if (response.dedupe) parts.push("near-duplicates hidden");
  return parts.join(" · ");
}

function setHeading(action, meta) {
  if (action.type === "similar") {
    ui.title.replaceChildren(
      el("img", { class: "title-thumb", src: thumbnailUrl(action.id), alt: "", width: 40, height: 40 }),
      `More like item ${action.id}`,
    );
  } else if (action.type === "refine") {
    ui.title.textContent = `Refined: ${action.liked.length} liked, ${action.disliked.length} disliked`;
  } else if (action.type === "again") {
    ui.title.textContent = action.name ? `Look-alikes for “${action.name}”` : "Look-alikes for your last search";
  } else {
    const more = action.extras ? ` + ${action.extras} more` : "";
    ui.title.textContent = `Look-alikes for “${action.name}”${more}`;
  }
  ui.meta.textContent = meta;
}

function showResults(action, response) {
  state.action = action;
  state.queryId = response.query_id;
  state.feedback.clear();
  setHeading(action, describeResults(response));
  renderResults(ui.results, response.results, (result) => moreLikeThis(result.id), feedback);
  updateRefine();
  filters.counts(response.facets);
  remember(action.type === "similar" ? null : response.query_id);
  if (action.type === "upload" || action.type === "again") {
    state.lastQuery = { id: response.query_id, name: action.name };
  }
  if (!response.results.length) {
    ui.resultsEmpty.hidden = false;
    ui.resultsEmpty.querySelector("p").textContent = "Nothing matched. Try other filters, another category or a "
      + "larger k.";
  }
  map.setHighlight({ results: response.results, sourceId: action.type === "similar" ? action.id : undefined });
}

function showError(error, action) {
  ui.results.replaceChildren();
  state.queryId = null;
  state.feedback.clear();
  updateRefine();
  ui.meta.textContent = "No results";
  ui.resultsEmpty.hidden = true;
  let text = error instanceof ApiError ? error.message : `Something went wrong: ${error.message || error}`;
  if (error instanceof ApiError && error.status === 400 && action.type === "upload") {
    text = `${action.extras ? "One of the files" : "This file"} couldn't be read as an image: ${text}`;
  }
  if (error instanceof ApiError && error.status === 409 && state.catalogEmpty) {
    text += " Add images with `lookalike ingest PATH`, then reload this page.";
  }
  setMessage(ui.message, text, "error");
}

async function run(action, fetchResults, text) {
  const controller = startSearch(action, text);
  try {
    const response = await fetchResults(controller.signal);
    showResults(action, response);
    refreshHistory();
    forYou.refresh();
  } catch (error) {
    if (error.name !== "AbortError") showError(error, action);
  } finally {
    if (state.controller === controller) {
      setLoading(false);
      state.controller = null;
    }
  }
}

async function searchUpload() {
  if (!query.hasImage()) {
    setMessage(ui.message, "Choose, drop, paste or photograph an image first.", "info");
    return;
  }
  let payload;
  try {
    payload = await query.payload();
  } catch (error) {
    setMessage(ui.message, `Could not prepare the image: ${error.message}`);
    return;
  }
  await run({ type: "upload", name: payload.name, extras: payload.extras.length },
    (signal) => searchImage(payload.blob, payload.name, { ...options(), extras: payload.extras, signal }));
}

/** Bring the results into view when they are off screen (on a phone they sit below the form). */
function revealResults() {
  const top = ui.title.getBoundingClientRect().top;
  if (top < 0 || top > window.innerHeight * 0.6) ui.title.scrollIntoView({ behavior: "smooth", block: "start" });
}

function moreLikeThis(id) {
  return run({ type: "similar", id },
    (signal) => similarTo(id, { ...options(), signal }), `Finding more like item ${id}…`);
}

/** The last image search again, from its stored query: no upload (a filter changed, or the page was reloaded). */
function searchStored(queryId, name) {
  return run({ type: "again", name, queryId }, (signal) => searchAgain(queryId, { ...options(), signal }));
}

function rerun() {
  if (!state.action) {
    remember(null);
    return;
  }
  if (state.action.type === "similar") moreLikeThis(state.action.id);
  else if (state.action.type === "refine") refine(state.action);
  else if (state.lastQuery) searchStored(state.lastQuery.id, state.lastQuery.name);
  else searchUpload();
}

// ---- side panels ----------------------------------------------------------------------------------------

async function refreshHistory() {
  try {
    const entries = await getHistory(HISTORY_LIMIT);
    renderHistory(ui.history, ui.historyEmpty, entries, (result) => moreLikeThis(result.id));
  } catch {
    ui.historyEmpty.hidden = false;
    ui.historyEmpty.textContent = "Recent searches are unavailable.";
  }
}

async function loadCategories() {
  const categories = await getCategories();
  setCategories(categories.map((c) => c.name));
  const chosen = ui.category.value;
  ui.category.replaceChildren(el("option", { value: "", text: "All categories" }),
    ...categories.map((c) => el("option", { value: c.name, text: `${c.name} (${c.count.toLocaleString()})` })));
  ui.category.value = categories.some((c) => c.name === chosen) ? chosen : "";
  ui.category.dataset.loaded = "true";
}

async function loadFilters() {
  filters.build(await getFacets());
}

/** A search kept in the page's address: its options, then the search itself again. */
function restore() {
  const params = new URLSearchParams(location.search);
  if (params.has("k") && [...ui.k.options].some((o) => o.value === params.get("k"))) ui.k.value = params.get("k");
  if (params.has("category")) ui.category.value = params.get("category");
  try {
    if (params.has("filter")) filters.set(JSON.parse(params.get("filter")));
  } catch {
    // an address edited by hand: its filter is ignored
  }
  const queryId = Number(params.get("q"));
  if (Number.isInteger(queryId) && queryId > 0) searchStored(queryId, null);
}

async function loadStats() {
  const stats = await getStats();
  state.catalogEmpty = stats.items === 0;
  ui.stats.textContent = `${stats.items.toLocaleString()} items · ${stats.categories} categories`;
  ui.stats.title = `model ${stats.backbone} + ${stats.head}, ${stats.index?.type ?? ""} index`;
  if (state.catalogEmpty) {
    setMessage(ui.message, "The catalog is empty: add images with `lookalike ingest PATH` "
      + "(or run `lookalike demo`), then reload this page.", "info");
  }
}

async function init() {
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    searchUpload();
  });
  ui.k.addEventListener("change", rerun);
  ui.category.addEventListener("change", rerun);
  ui.dedupe.addEventListener("change", rerun);
  ui.refine.addEventListener("click", () => refine());
  $("#history-refresh").addEventListener("click", refreshHistory);
  $("#skip-to-results").addEventListener("click", (event) => {
    event.preventDefault();
    if (ui.resultsArea.closest("[hidden]")) tabs.show("search");
    ui.resultsArea.focus({ preventScroll: true });
    ui.resultsArea.scrollIntoView({ block: "start" });
  });
  tabs.fromHash();
  shopperId();
  const loaded = await Promise.allSettled([loadCategories(), loadStats(), refreshHistory(), forYou.refresh(),
    loadFilters()]);
  const failed = loaded.find((r) => r.status === "rejected");
  if (failed) setMessage(ui.message, failed.reason?.message ?? "The server could not be reached.");
  restore();
  document.body.dataset.ready = "true";
}

init();
