// The embedding map: Plotly (served locally), points coloured by category, a thumbnail on hover,
// the last query's results highlighted. Polls while the server is still computing the projection.

import { ApiError, getEmbeddingMap, thumbnailUrl } from "./api.js";
import { categoryColor } from "./colors.js";
import { $, setMessage } from "./dom.js";

const PLOTLY_SRC = "/static/vendor/plotly.min.js";
const POLL_MS = 1000;
const HIGHLIGHT = "#14213d";

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

const isTouch = () => window.matchMedia?.("(pointer: coarse)").matches ?? false;
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
  let data = null;
  let byId = new Map();
  let highlight = null;
  let loading = null;
  let Plotly = null;

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
    plot.on("plotly_hover", showHover);
    plot.on("plotly_unhover", () => { hover.hidden = true; });
    plot.on("plotly_click", (event) => {
      const id = event.points?.[0]?.customdata?.[0];
      // On touch screens the first tap on a point shows it, a second tap on the same point opens it.
      if (isTouch() && (hover.hidden || hover.dataset.id !== String(id))) {
        showHover(event);
        return;
      }
      if (id !== null && id !== undefined) {
        hover.hidden = true;
        onSelect(Number(id));
      }
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
    const traces = [...categoryTraces(data.points), ...highlightTraces(byId, highlight)];
    const first = !plot.classList.contains("js-plotly-plot");
    await Plotly.react(plot, traces, LAYOUT, CONFIG);
    if (first) bindEvents();
    describe();
  }

  async function fetchUntilReady() {
    for (;;) {
      const { status: code, body } = await getEmbeddingMap();
      if (code === 200) return body;
      status.hidden = false;
      statusText.textContent = "Computing the map… this takes a moment the first time.";
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
    }
  }

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
