// Search page: reads the form, calls the API and renders hits, timings and errors.
// Server strings only ever reach the DOM through textContent.
import { search } from "./api.js";

const SCENE = "qa";
const TIMING_STAGES = ["preprocess", "match", "rank", "summary", "total"];

const form = document.getElementById("search-form");
const queryInput = document.getElementById("query");
const topKSelect = document.getElementById("top-k");
const examples = document.getElementById("examples");
const statusLine = document.getElementById("status");
const errorBox = document.getElementById("error");
const timingsLine = document.getElementById("timings");
const results = document.getElementById("results");

let inFlight = null;

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

  header.append(element("h2", "hit-question", String(doc.question ?? "")), score);
  item.append(header, element("p", "hit-answer", String(doc.answer ?? "")));
  const categories = Array.isArray(doc.category) ? doc.category : [];
  if (categories.length > 0) {
    const tags = element("ul", "hit-categories");
    tags.setAttribute("aria-label", "Categories");
    for (const category of categories) tags.append(element("li", "hit-category", String(category)));
    item.append(tags);
  }
  return item;
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

async function runSearch(query, topK) {
  inFlight?.abort();
  const controller = new AbortController();
  inFlight = controller;

  examples.hidden = true;
  clearResults();
  setBusy(true);
  statusLine.textContent = "Searching…";

  try {
    const { hits, timings_ms: timings } = await search({ scene: SCENE, query, topK, signal: controller.signal });
    results.replaceChildren(...hits.map(renderHit));
    renderTimings(timings);
    statusLine.textContent =
      hits.length === 0
        ? `No results for “${query}”. Try describing it differently.`
        : `${hits.length} ${hits.length === 1 ? "result" : "results"} for “${query}”`;
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

form.addEventListener("submit", (event) => {
  event.preventDefault();
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
