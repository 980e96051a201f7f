// The embedding map: Plotly (served locally), points coloured by category, a thumbnail on hover, the last query's
// results highlighted. A tap (or the arrow keys on the focused map, or the list of the last results) chooses a
// point and shows it below the map; a click, a second tap, Enter or "More like this" opens it. While the server
// computes the projection, its progress is polled and shown.

import { ApiError, getEmbeddingMap, thumbnailUrl } from "./api.js";
import { categoryColor } from "./colors.js";
import { $, el, setMessage } from "./dom.js";

const PLOTLY_SRC = "/static/vendor/plotly.min.js";
const POLL_MS = 500;
const HIGHLIGHT = "#14213d";
const CHOSEN = "#f4a261";
const DIRECTIONS = { ArrowRight: [1, 0], ArrowLeft: [-1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };

let plotlyPromise = null;

function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  plotlyPromise ??= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = PLOTLY_SRC;
    script.onload = () => resolve(window.Plotly);
    script.onerror = () => {
      plotlyPromise = null;
      reject(new Error("The plotting library could not be loaded (is the `plotly` package installed?)."));
    };
    document.head.append(script);
  });
  return plotlyPromise;
}

const isTouch = (event) => event?.pointerType === "touch" || event?.type?.startsWith("touch")
  || (window.matchMedia?.("(pointer: coarse)").matches ?? false);
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function categoryTraces(points) {
  const groups = new Map();
  for (const point of points) {
    const key = point.category ?? "uncategorised";
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(point);
  }
  return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, group]) => ({
    type: "scatter", mode: "markers", name, hoverinfo: "none",
    x: group.map((p) => p.x), y: group.map((p) => p.y), customdata: group.map((p) => [p.id, name]),
    marker: { size: 8, color: categoryColor(name), opacity: 0.78, line: { width: 0.5, color: "#ffffff" } },
  }));
}

/** The last results (and the query: exact for "more like this", else the score-weighted mean of its results). */
function highlightTraces(byId, highlight) {
  if (!highlight) return [];
  const hits = highlight.results.map((r) => ({ ...r, point: byId.get(r.id) })).filter((r) => r.point);
  const traces = [];
  if (hits.length) {
    traces.push({
      type: "scatter", mode: "markers+text", name: "last results", hoverinfo: "none",
      x: hits.map((h) => h.point.x), y: hits.map((h) => h.point.y), text: hits.map((h) => String(h.rank)),
      textposition: "top center", textfont: { size: 11, color: HIGHLIGHT },
      customdata: hits.map((h) => [h.id, h.category ?? "uncategorised"]),
      marker: { size: 15, color: "rgba(0,0,0,0)", line: { width: 2.5, color: HIGHLIGHT } },
    });
  }
  const source = highlight.sourceId !== undefined ? byId.get(highlight.sourceId) : null;
  const query = source ?? weightedMean(hits);
  if (query) {
    traces.push({
      type: "scatter", mode: "markers", name: source ? "query item" : "query (approx.)", hoverinfo: "none",
      x: [query.x], y: [query.y], customdata: source ? [[source.id, source.category]] : [[null, "query"]],
      marker: { size: 20, symbol: "star", color: "#e63946", line: { width: 1.5, color: "#ffffff" } },
    });
  }
  return traces;
}

/** The chosen point, ringed; always the last trace (empty when none), so it can be moved alone. */
const chosenTrace = (point) => ({
  type: "scatter", mode: "markers", name: "chosen", hoverinfo: "none", showlegend: false,
  x: point ? [point.x] : [], y: point ? [point.y] : [], customdata: point ? [[point.id, point.category]] : [],
  marker: { size: 22, color: "rgba(0,0,0,0)", line: { width: 3.5, color: CHOSEN } },
});

/** The point nearest `from` in an arrow key's direction (a step across counts double), or null at the edge. */
function nextPoint(points, from, [dx, dy]) {
  let best = null;
  let bestCost = Infinity;
  for (const point of points) {
    const along = (point.x - from.x) * dx + (point.y - from.y) * dy;
    const cost = along + 2 * Math.abs((point.x - from.x) * dy - (point.y - from.y) * dx);
    if (along > 1e-9 && cost < bestCost) [best, bestCost] = [point, cost];
  }
  return best;
}

const formatSeconds = (s) => (s < 90 ? `${Math.max(1, Math.round(s))} s` : `${Math.round(s / 60)} min`);

function weightedMean(hits) {
  if (!hits.length) return null;
  const weights = hits.map((h) => Math.max(1e-3, h.score));
  const total = weights.reduce((a, b) => a + b, 0);
  return {
    x: hits.reduce((sum, h, i) => sum + h.point.x * weights[i], 0) / total,
    y: hits.reduce((sum, h, i) => sum + h.point.y * weights[i], 0) / total,
  };
}

const LAYOUT = {
  margin: { l: 8, r: 8, t: 8, b: 8 }, hovermode: "closest", dragmode: "pan",
  paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#fbfcfe",
  xaxis: { visible: false, range: [-0.04, 1.04] }, yaxis: { visible: false, range: [-0.06, 1.06] },
  legend: { orientation: "h", x: 0, y: -0.02, yanchor: "top", font: { size: 12 } },
  modebar: { bgcolor: "rgba(255,255,255,0.85)", color: "#98a2b3", activecolor: "#1f3a5f" },
  font: { family: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", color: "#344054" },
};
const CONFIG = {
  responsive: true, displaylogo: false, scrollZoom: true,
  modeBarButtons: [["zoom2d", "pan2d", "zoomIn2d", "zoomOut2d", "resetScale2d", "toImage"]],
  toImageButtonOptions: { filename: "lookalike-embedding-map" },
};

export function createMap({ onSelect }) {
  const plot = $("#map-plot");
  const status = $("#map-status");
  const statusText = $("#map-status-text");
  const message = $("#map-message");
  const note = $("#map-legend-note");
  const hover = $("#map-hover");
  const hoverImg = $("#map-hover-img");
  const hoverCaption = $("#map-hover-caption");
  const details = $("#map-details");
  const resultsList = $("#map-results-list");
  let data = null;
  let byId = new Map();
  let highlight = null;
  let chosen = null; // the point shown below the map
  let traceCount = 0;
  let loading = null;
  let Plotly = null;

  const describePoint = (point) => {
    const rank = highlight?.results.find((r) => r.id === point.id)?.rank;
    return `Item ${point.id} · ${point.category ?? "uncategorised"}${rank ? ` · #${rank} of the last results` : ""}`;
  };

  function showDetails() {
    details.hidden = !chosen;
    if (!chosen) return;
    $("#map-details-img").src = thumbnailUrl(chosen.id);
    $("#map-details-caption").textContent = describePoint(chosen);
    details.dataset.id = chosen.id;
  }

  /** Show `point` below the map (scrolled into view: on a phone the map fills the screen) and ring it. */
  function choose(point) {
    chosen = point;
    showDetails();
    if (point) details.scrollIntoView({ block: "nearest" });
    const { x, y, customdata } = chosenTrace(point);
    if (traceCount) Plotly.restyle(plot, { x: [x], y: [y], customdata: [customdata] }, [traceCount - 1]);
  }

  function onKeydown(event) {
    if (!data?.points.length) return;
    if (event.key in DIRECTIONS) {
      event.preventDefault();
      const first = byId.get(highlight?.results[0]?.id) ?? data.points[0];
      choose(chosen ? nextPoint(data.points, chosen, DIRECTIONS[event.key]) ?? chosen : first);
    } else if ((event.key === "Enter" || event.key === " ") && chosen) {
      event.preventDefault();
      onSelect(chosen.id);
    } else if (event.key === "Escape") {
      choose(null);
    }
  }

  function renderResultsList() {
    const hits = (highlight?.results ?? []).filter((r) => byId.has(r.id));
    resultsList.replaceChildren(...hits.map((r) => el("li", {}, [el("button", {
      type: "button", class: "map-result", dataset: { id: r.id },
      onfocus: () => choose(byId.get(r.id)), onmouseenter: () => choose(byId.get(r.id)),
      onclick: () => onSelect(r.id),
    }, [el("img", { src: thumbnailUrl(r.id), alt: "", width: 40, height: 40, loading: "lazy" }),
      `#${r.rank} · item ${r.id}`])])));
    $("#map-results").hidden = !hits.length;
  }

  function showHover(event) {
    const point = event.points?.[0];
    const [id, category] = point?.customdata ?? [];
    if (id === null || id === undefined) {
      hover.hidden = true;
      return;
    }
    hoverImg.src = thumbnailUrl(id);
    hoverCaption.textContent = `Item ${id} · ${category}`;
    hover.dataset.id = id;
    hover.hidden = false;
    const { clientX = 0, clientY = 0 } = event.event ?? {};
    const box = hover.getBoundingClientRect();
    const left = Math.min(clientX + 16, window.innerWidth - box.width - 8);
    const top = clientY + 16 + box.height > window.innerHeight ? clientY - box.height - 16 : clientY + 16;
    Object.assign(hover.style, { left: `${Math.max(8, left)}px`, top: `${Math.max(8, top)}px` });
  }

  function bindEvents() {
    plot.on("plotly_hover", (event) => { if (!isTouch(event.event)) showHover(event); });
    plot.on("plotly_unhover", () => { hover.hidden = true; });
    plot.on("plotly_click", (event) => {
      const point = byId.get(Number(event.points?.[0]?.customdata?.[0] ?? NaN));
      if (!point) return;
      hover.hidden = true;
      // On touch screens the first tap on a point shows it below the map, a second tap on it opens it.
      if (isTouch(event.event) && chosen !== point) choose(point);
      else onSelect(point.id);
    });
  }

  function describe() {
    const shown = data.points.length;
    note.textContent = shown < data.items ? `Showing a sample of ${shown.toLocaleString()} of `
      + `${data.items.toLocaleString()} items.` : `Showing all ${shown.toLocaleString()} items.`;
    if (highlight) note.textContent += " Ringed points: the last search's results; star: the query.";
    note.hidden = false;
  }

  async function draw() {
    const traces = [...categoryTraces(data.points), ...highlightTraces(byId, highlight), chosenTrace(chosen)];
    const first = !plot.classList.contains("js-plotly-plot");
    await Plotly.react(plot, traces, LAYOUT, CONFIG);
    traceCount = traces.length;
    if (first) bindEvents();
    describe();
    showDetails();
    renderResultsList();
  }

  /** The server's progress ({progress: 0..1, stage, elapsed_s}) on the bar, with a rough time left. */
  function showProgress({ progress = 0, stage = "", elapsed_s: elapsed = 0 }) {
    statusText.textContent = "Computing the map; the first time takes a while…";
    $("#map-progress-row").hidden = false;
    $("#map-progress").value = progress;
    const left = progress > 0.15 ? ` · about ${formatSeconds((elapsed * (1 - progress)) / progress)} left` : "";
    $("#map-progress-text").textContent = `${Math.round(progress * 100)}% · ${stage}${left}`;
  }

  async function fetchUntilReady() {
    for (;;) {
      const { status: code, body } = await getEmbeddingMap();
      if (code === 200) return body;
      showProgress(body ?? {});
      await sleep(POLL_MS);
    }
  }

  async function load() {
    setMessage(message, "");
    status.hidden = false;
    statusText.textContent = "Loading the map…";
    try {
      const [plotly, body] = await Promise.all([loadPlotly(), fetchUntilReady()]);
      Plotly = plotly;
      data = body;
      byId = new Map(data.points.map((p) => [p.id, p]));
      if (!data.points.length) {
        setMessage(message, "The catalog has too few items to draw a map yet.", "info");
        return;
      }
      await draw();
    } catch (error) {
      setMessage(message, error instanceof ApiError ? error.message : String(error.message || error));
      loading = null;
    } finally {
      status.hidden = true;
      $("#map-progress-row").hidden = true;
    }
  }

  plot.addEventListener("keydown", onKeydown);
  $("#map-details-open").addEventListener("click", () => chosen && onSelect(chosen.id));

  return {
    /** Load (once) and draw; later calls only redraw with the latest highlight. */
    async show() {
      if (data && Plotly) {
        if (!data.points.length) return;
        await draw();
        Plotly.Plots.resize(plot);
        return;
      }
      loading ??= load();
      await loading;
    },
    setHighlight(value) {
      highlight = value;
    },
    hideHover() {
      hover.hidden = true;
    },
  };
}
