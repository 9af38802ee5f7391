// Search page: reads the form, calls the API and renders hits, timings and errors.
// Server strings only ever reach the DOM through textContent.
import { health, scenes, search } from "./api.js";

const TIMING_STAGES = ["preprocess", "match", "rank", "summary", "total"];

const form = document.getElementById("search-form");
const queryInput = document.getElementById("query");
const topKSelect = document.getElementById("top-k");
const examples = document.getElementById("examples");
const statusLine = document.getElementById("status");
const errorBox = document.getElementById("error");
const timingsLine = document.getElementById("timings");
const results = document.getElementById("results");
const sceneSwitch = document.getElementById("scene-switch");
const queryLabel = document.getElementById("query-label");
const imageDrop = document.getElementById("image-drop");
const imageFile = document.getElementById("image-file");
const modeLine = document.getElementById("mode");

const tagline = document.getElementById("tagline");
const MODES = {
  qa: {
    label: "Describe what you are looking for",
    placeholder: "e.g. a large animal with a trunk",
    tagline: "Describe it, find the word — semantic search over WordNet",
  },
  images: {
    label: "Describe the picture you want",
    placeholder: "e.g. a coin, a red fish, a train",
    tagline: "Find pictures by words or by a picture — Tux Paint's stamps",
  },
};
const debugLayers = document.getElementById("debug-layers");
const debugRan = document.getElementById("debug-ran");
const moreButton = document.getElementById("more");
const LAYERS = ["qp", "match", "rank", "summary"];
const MAX_TOP_K = 100;
const DEBOUNCE_MS = 350;

let mode = "qa";
let described = {};
let lastSearch = null; // {query, topK, image}: what "More results" extends
let debounceTimer = null;
let imageSpace = "";
let inFlight = null;
health().then((info) => {
  imageSpace = typeof info.image_space === "string" ? info.image_space : "";
});

/** Only http(s) and same-site URLs from the server become links or image sources. */
function safeUrl(value) {
  try {
    const url = new URL(String(value ?? ""), window.location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function formatScore(score) {
  return typeof score === "number" && Number.isFinite(score) ? score.toFixed(3) : "–";
}

function formatMs(value) {
  return typeof value === "number" && Number.isFinite(value) ? `${value.toFixed(1)} ms` : "– ms";
}

/**
 * An element whose text has the query's terms wrapped in <mark>. `spans` are [start, end)
 * offsets in Unicode code points (the API's unit), so the text is split with Array.from.
 * Everything goes in as text nodes: nothing from the server is parsed as HTML.
 */
function markedElement(tag, className, text, spans) {
  const node = element(tag, className);
  const chars = Array.from(String(text ?? ""));
  let at = 0;
  const valid = (Array.isArray(spans) ? spans : [])
    .filter((s) => Array.isArray(s) && Number.isInteger(s[0]) && Number.isInteger(s[1]))
    .sort((a, b) => a[0] - b[0]);
  for (const [start, end] of valid) {
    if (start < at || end <= start || end > chars.length) continue;
    if (start > at) node.append(chars.slice(at, start).join(""));
    node.append(element("mark", "", chars.slice(start, end).join("")));
    at = end;
  }
  if (at < chars.length) node.append(chars.slice(at).join(""));
  return node;
}

function renderHit(hit) {
  const item = element("li", "hit");
  const header = element("div", "hit-header");
  const score = element("span", "hit-score", formatScore(hit.score));
  score.title = "Relevance score";
  const doc = hit.document;

  if (!doc) {
    item.classList.add("hit-unavailable");
    header.append(element("h2", "hit-id", String(hit.id ?? "")), score);
    item.append(header, element("p", "hit-answer", "document unavailable"));
    return item;
  }

  const marks = hit.highlights ?? {};
  header.append(markedElement("h2", "hit-question", doc.question, marks.question), score);
  item.append(header, markedElement("p", "hit-answer", doc.answer, marks.answer));
  const categories = Array.isArray(doc.category) ? doc.category : [];
  if (categories.length > 0) {
    const tags = element("ul", "hit-categories");
    tags.setAttribute("aria-label", "Categories");
    for (const category of categories) tags.append(element("li", "hit-category", String(category)));
    item.append(tags);
  }
  return item;
}

function renderImageHit(hit) {
  const item = element("li", "hit image-hit");
  const doc = hit.document ?? {};
  const caption = String(doc.caption || doc.name || hit.id || "");
  const figure = element("figure", "image-figure");
  const thumbnail = safeUrl(doc.thumbnail_url);
  const full = safeUrl(doc.url);
  if (thumbnail) {
    const img = element("img", "image-thumb");
    img.src = thumbnail;
    img.alt = caption;
    img.loading = "lazy";
    if (full) {
      const link = element("a", "image-link");
      link.href = full;
      link.target = "_blank";
      link.rel = "noopener";
      link.append(img);
      figure.append(link);
    } else {
      figure.append(img);
    }
  }
  const text = element("figcaption", "image-caption", caption);
  text.append(" ", element("span", "hit-score", formatScore(hit.score)));
  figure.append(text);
  item.append(figure);
  return item;
}

function currentScene(image) {
  return mode === "qa" ? "qa" : image ? "i2i" : "t2i";
}

/** One select per layer of the scene about to be searched: "bucketed" or a forced experiment. */
function renderDebugLayers() {
  const scene = described[currentScene(lastSearch?.image)] ?? described[currentScene(null)];
  debugLayers.replaceChildren();
  for (const layer of LAYERS) {
    const names = Object.keys(scene?.layers?.[layer] ?? {});
    const label = element("label", "debug-layer", `${layer} `);
    const select = element("select");
    select.dataset.layer = layer;
    select.append(element("option", "", "bucketed"));
    select.options[0].value = "";
    for (const name of names) {
      const option = element("option", "", `${name} (${scene.layers[layer][name]})`);
      option.value = name;
      select.append(option);
    }
    label.append(select);
    debugLayers.append(label);
  }
}

function forcedExperiments() {
  const forced = {};
  for (const select of debugLayers.querySelectorAll("select")) {
    if (select.value) forced[select.dataset.layer] = select.value;
  }
  return forced;
}

function describeMode(scene, experiments) {
  if (scene === "i2i") return `Matching pixels: ${imageSpace || "image space"}.`;
  if (scene !== "t2i") return "";
  const match = experiments?.match ?? "";
  if (match === "caption") return "Matching captions (mode: caption). Pixels are matched only with a CLIP model.";
  return `Matching mode: ${match}.`;
}

function renderTimings(timings) {
  timingsLine.textContent = TIMING_STAGES.map((stage) => `${stage} ${formatMs(timings?.[stage])}`).join(" · ");
  timingsLine.hidden = false;
}

function showError(error) {
  errorBox.replaceChildren();
  const message = element("p", "error-message", error.message || "Something went wrong.");
  if (error.retryAfter != null) message.textContent += ` Try again in ${error.retryAfter} s.`;
  const code = element("p", "error-code", "Code: ");
  code.append(element("code", "", String(error.code ?? "unknown_error")));
  if (error.status) code.append(` (HTTP ${error.status})`);
  errorBox.append(message, code);
  errorBox.hidden = false;
}

function clearResults() {
  results.replaceChildren();
  errorBox.hidden = true;
  errorBox.replaceChildren();
  timingsLine.hidden = true;
  timingsLine.textContent = "";
}

function setBusy(busy) {
  results.setAttribute("aria-busy", String(busy));
  form.setAttribute("aria-busy", String(busy));
}

async function runSearch(query, topK, image = null) {
  inFlight?.abort();
  const controller = new AbortController();
  inFlight = controller;

  examples.hidden = true;
  clearResults();
  setBusy(true);
  statusLine.textContent = "Searching…";
  const scene = currentScene(image);
  moreButton.hidden = true;
  const subject = image ? `the image “${image.name || "upload"}”` : `“${query}”`;

  try {
    const forced = forcedExperiments();
    const found = await search({ scene, query, image, topK, forced, signal: controller.signal });
    const { hits, timings_ms: timings, experiments } = found;
    lastSearch = { query, topK, image };
    moreButton.hidden = hits.length < topK || topK >= MAX_TOP_K;
    debugRan.textContent = `Ran: ${LAYERS.map((l) => `${l} ${experiments?.[l] ?? "?"}`).join(" · ")}`;
    results.replaceChildren(...hits.map(mode === "qa" ? renderHit : renderImageHit));
    renderTimings(timings);
    modeLine.textContent = describeMode(scene, experiments);
    modeLine.hidden = !modeLine.textContent;
    statusLine.textContent =
      hits.length === 0
        ? `No results for ${subject}. Try describing it differently.`
        : `${hits.length} ${hits.length === 1 ? "result" : "results"} for ${subject}`;
  } catch (error) {
    if (controller.signal.aborted) return; // superseded by a newer search
    statusLine.textContent = "Search failed.";
    showError(error);
  } finally {
    if (inFlight === controller) {
      inFlight = null;
      setBusy(false);
    }
  }
}

function submitCurrentQuery() {
  const query = queryInput.value.trim();
  if (!query) {
    statusLine.textContent = "Type a description to search.";
    queryInput.focus();
    return;
  }
  const topK = Number.parseInt(topKSelect.value, 10) || 10;
  const url = new URL(window.location.href);
  url.searchParams.set("q", query);
  url.searchParams.set("k", String(topK));
  history.replaceState(null, "", url);
  runSearch(query, topK);
}

function setMode(next) {
  mode = next;
  queryLabel.textContent = MODES[mode].label;
  queryInput.placeholder = MODES[mode].placeholder;
  tagline.textContent = MODES[mode].tagline;
  imageDrop.hidden = mode !== "images";
  examples.hidden = mode !== "qa";
  results.classList.toggle("image-grid", mode === "images");
  modeLine.hidden = true;
  clearResults();
  statusLine.textContent = "";
  moreButton.hidden = true;
  lastSearch = null;
  renderDebugLayers();
}

function searchByImage(file) {
  if (!file) return;
  const topK = Number.parseInt(topKSelect.value, 10) || 10;
  runSearch("", topK, file);
}

scenes().then((found) => {
  described = found;
  renderDebugLayers();
});

// Typing searches after a short pause; Enter searches at once.
queryInput.addEventListener("input", () => {
  clearTimeout(debounceTimer);
  if (queryInput.value.trim().length < 3) return;
  debounceTimer = setTimeout(submitCurrentQuery, DEBOUNCE_MS);
});

moreButton.addEventListener("click", () => {
  if (!lastSearch) return;
  const topK = Math.min(lastSearch.topK + 10, MAX_TOP_K);
  runSearch(lastSearch.query, topK, lastSearch.image);
});

sceneSwitch.addEventListener("change", (event) => {
  if (event.target.name === "scene") setMode(event.target.value);
});

imageFile.addEventListener("change", () => searchByImage(imageFile.files?.[0]));
imageDrop.addEventListener("dragover", (event) => {
  event.preventDefault();
  imageDrop.classList.add("dragging");
});
imageDrop.addEventListener("dragleave", () => imageDrop.classList.remove("dragging"));
imageDrop.addEventListener("drop", (event) => {
  event.preventDefault();
  imageDrop.classList.remove("dragging");
  searchByImage(event.dataTransfer?.files?.[0]);
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(debounceTimer);
  submitCurrentQuery();
});

examples.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-query]");
  if (!button) return;
  queryInput.value = button.dataset.query;
  queryInput.focus(); // the examples hide once a search runs; keep keyboard focus somewhere useful
  submitCurrentQuery();
});

// A shared link (?q=...&k=...) reruns its search on load.
const params = new URLSearchParams(window.location.search);
if ([...topKSelect.options].some((option) => option.value === params.get("k"))) {
  topKSelect.value = params.get("k");
}
if (params.get("q")?.trim()) {
  queryInput.value = params.get("q");
  submitCurrentQuery();
}
