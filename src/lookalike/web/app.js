// Lookalike dashboard: wires the query input, search, results, history, embedding map and accuracy views.

import {
  ApiError, getCategories, getHistory, getStats, searchImage, similarTo, thumbnailUrl,
} from "./js/api.js";
import { setCategories } from "./js/colors.js";
import { $, el, setMessage } from "./js/dom.js";
import { renderHistory } from "./js/history.js";
import { createMap } from "./js/map.js";
import { createQueryInput } from "./js/query.js";
import { loadReport } from "./js/report.js";
import { renderResults, renderSkeletons } from "./js/results.js";
import { createTabs } from "./js/tabs.js";

const HISTORY_LIMIT = 6;

const ui = {
  form: $("#search-form"),
  searchButton: $("#search-btn"),
  k: $("#k"),
  category: $("#category"),
  results: $("#results"),
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
};

const query = createQueryInput({
  onReady: () => {
    ui.searchButton.disabled = false;
    setMessage(ui.message, "");
  },
  onError: (text) => setMessage(ui.message, text, "info"),
});

const map = createMap({ onSelect: (id) => { tabs.show("search"); moreLikeThis(id); } });

const tabs = createTabs($(".tabs"), (view) => {
  map.hideHover();
  if (view === "map") map.show();
  if (view === "accuracy") loadReport();
});

// ---- search ---------------------------------------------------------------------------------------------

const options = () => ({ k: Number(ui.k.value), category: ui.category.value || null });

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
  return parts.join(" · ");
}

function setHeading(action, meta) {
  if (action.type === "similar") {
    ui.title.replaceChildren(
      el("img", { class: "title-thumb", src: thumbnailUrl(action.id), alt: "", width: 40, height: 40 }),
      `More like item ${action.id}`,
    );
  } else {
    ui.title.textContent = `Look-alikes for “${action.name}”`;
  }
  ui.meta.textContent = meta;
}

function showResults(action, response) {
  state.action = action;
  setHeading(action, describeResults(response));
  renderResults(ui.results, response.results, (result) => moreLikeThis(result.id));
  if (!response.results.length) {
    ui.resultsEmpty.hidden = false;
    ui.resultsEmpty.querySelector("p").textContent = "Nothing matched. Try another category or a larger k.";
  }
  map.setHighlight({ results: response.results, sourceId: action.type === "similar" ? action.id : undefined });
}

function showError(error) {
  ui.results.replaceChildren();
  ui.meta.textContent = "No results";
  ui.resultsEmpty.hidden = true;
  let text = error instanceof ApiError ? error.message : `Something went wrong: ${error.message || error}`;
  if (error instanceof ApiError && error.status === 400) text = `This file couldn't be read as an image: ${text}`;
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
    if (action.type === "upload") refreshHistory();
  } catch (error) {
    if (error.name !== "AbortError") showError(error);
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
  await run({ type: "upload", name: payload.name },
    (signal) => searchImage(payload.blob, payload.name, { ...options(), signal }));
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

function rerun() {
  if (!state.action) return;
  if (state.action.type === "similar") moreLikeThis(state.action.id);
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
  $("#history-refresh").addEventListener("click", refreshHistory);
  tabs.fromHash();
  const loaded = await Promise.allSettled([loadCategories(), loadStats(), refreshHistory()]);
  const failed = loaded.find((r) => r.status === "rejected");
  if (failed) setMessage(ui.message, failed.reason?.message ?? "The server could not be reached.");
  document.body.dataset.ready = "true";
}

init();
