// Search page: keeps the state in the URL, calls the API, renders hits, notices and errors.
// On the demo's tabs a search asks for one page plus one hit (is there more?); the first
// "More results" asks for the first 100, which also gives the count, and every page after
// that is appended from memory. A declared scene's tab pages with the API's next_page_token,
// as deep as the scene allows. Hits already shown stay in place.
import { search } from "./api.js";
import { clearAnswer, showAnswer, showTagFacets } from "./answer.js";
import {
  enableDebug, forcedExperiments, renderLayers, showDebug,
} from "./debug.js";
import { showError, showNotice } from "./messages.js";
import { clearQueryImage, keepUpload, queryImageFor, rememberImage } from "./query_image.js";
import { readableTag } from "./render.js";
import {
  apiFilters, readFilterControls, renderActiveFilters, renderFacetGroups, renderFilterControls,
} from "./scene_filters.js";
import { addSceneTabs, customScenes } from "./scenes.js";
import { MAX_RESULTS, TABS, searchKey, stateFromUrl, urlFor } from "./state.js";
import { openViewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);
const form = $("search-form");
const queryInput = $("query");
const topKSelect = $("top-k");
const examples = $("examples");
const statusLine = $("status");
const notice = $("notice");
const errorBox = $("error");
const results = $("results");
const sceneSwitch = $("scene-switch");
const imageDrop = $("image-drop");
const imageFile = $("image-file");
const filterLine = $("filter");
const negativeInput = $("negative");
const negativeRow = $("negative-row");
const moreButton = $("more");
const filterControls = $("scene-filters");
const activeFilters = $("active-filters");

const MODES = {
  qa: {
    label: "Describe what you are looking for",
    placeholder: "e.g. a large animal with a trunk",
    tagline: "Describe it, find the word — semantic search over WordNet",
    filterField: "category",
  },
  images: {
    label: "Describe the picture you want",
    placeholder: "e.g. a coin, a red fish, a train",
    tagline: "Find pictures by words or by a picture — Tux Paint's stamps",
    filterField: "tags",
  },
};
const DEBOUNCE_MS = 350;
const DEBUG = stateFromUrl(window.location.href).debug;

let state = stateFromUrl(window.location.href);
let declared = new Map(); // custom scene name -> its description (scenes.js)
let current = null; // {key, hits, shown}: the answer on screen
let inFlight = null;
let inFlightKey = null; // what the search in flight asks (Enter in a range input also fires change)
let debounceTimer = null;

/** A random id kept in this browser, so bucketing (and MMR's order) stays stable for a user. */
function anonymousUserId() {
  try {
    let id = window.localStorage.getItem("mmsearch.user");
    if (!id) {
      id = [...crypto.getRandomValues(new Uint8Array(16))]
        .map((b) => b.toString(16).padStart(2, "0")).join("");
      window.localStorage.setItem("mmsearch.user", id);
    }
    return id;
  } catch {
    return null; // storage refused (private mode): bucketing falls back to per request
  }
}
const userId = anonymousUserId();

function pageSize() {
  return Number.parseInt(topKSelect.value, 10) || 10;
}

// --- navigation: every search is a history entry --------------------------------------------

/** Go to `next`: "push" a new history entry, "replace" this one, or "live" (typing: one entry
 * per burst of typing, not one per pause). */
function navigate(next, how) {
  next = { ...next, debug: DEBUG };
  const url = urlFor(next, window.location.href);
  const entry = { upload: next.upload ?? null, live: how === "live" };
  const same = url === window.location.href && (history.state?.upload ?? null) === entry.upload;
  if (how === "replace" || same || (how === "live" && history.state?.live)) {
    history.replaceState(entry, "", url);
  } else {
    history.pushState(entry, "", url);
  }
  show(next);
}

function show(next) {
  state = next;
  syncControls(next);
  if (!next.q && !next.like && !next.upload) {
    inFlight?.abort();
    current = null;
    clearAnswer();
    examples.hidden = next.tab !== "qa";
    statusLine.textContent = "";
    return;
  }
  if (inFlight && inFlightKey === searchKey(next)) return;
  if (current && current.key === searchKey(next)) {
    reveal(next.k ?? pageSize());
    return;
  }
  runSearch(next);
}

/** The declared scene a tab searches, or null on the demo's tabs. */
function customScene(next) {
  return TABS.includes(next.tab) ? null : declared.get(next.tab) ?? null;
}

function modeFor(next) {
  const scene = customScene(next);
  if (!scene) return MODES[next.tab] ?? MODES.qa;
  return {
    label: `Search ${scene.label}`,
    placeholder: "",
    tagline: `${scene.label}: a scene declared in this server's configuration`,
  };
}

function syncControls(next) {
  const mode = modeFor(next);
  const radio = sceneSwitch.querySelector(`input[value="${next.tab}"]`);
  if (radio) radio.checked = true;
  $("query-label").textContent = mode.label;
  queryInput.placeholder = mode.placeholder;
  $("tagline").textContent = mode.tagline;
  imageDrop.hidden = next.tab !== "images";
  results.classList.toggle("image-grid", next.tab === "images");
  if (queryInput.value.trim() !== next.q) queryInput.value = next.q;
  filterLine.hidden = !next.tag;
  $("filter-label").textContent = next.tag ? `Only “${readableTag(next.tag)}”` : "";
  negativeRow.hidden = next.tab !== "images";
  if (negativeInput.value.trim() !== (next.not ?? "")) negativeInput.value = next.not ?? "";
  if (!next.like && !next.upload) clearQueryImage();
  const scene = customScene(next);
  renderFilterControls(filterControls, scene, next.filters ?? {});
  renderActiveFilters(activeFilters, scene, next.filters ?? {}, removeFilter);
  renderLayers(sceneFor(next));
}

// --- searching ------------------------------------------------------------------------------

function sceneFor(next) {
  if (next.tab !== "images") return next.tab;
  return "t2i"; // by text, by an image, or both (the image as query_image)
}

function filtersFor(next) {
  const scene = customScene(next);
  if (scene) return apiFilters(scene, next.filters);
  return next.tag ? { [MODES[next.tab].filterField]: [next.tag] } : null;
}

/** One more than will be shown: a cheap way to know whether there is a next page. */
function askFor(count) {
  return Math.min(count + 1, MAX_RESULTS);
}

function request(next, topK, signal, facets = null, pageToken = null) {
  return queryImageFor(next, signal).then((image) =>
    search({
      scene: sceneFor(next),
      query: next.q,
      image,
      negativeQuery: next.tab === "images" ? next.not : null,
      topK,
      filters: filtersFor(next),
      facets,
      pageToken,
      userId,
      forced: DEBUG ? forcedExperiments() : {},
      signal,
    }),
  );
}

async function runSearch(next) {
  inFlight?.abort();
  const controller = new AbortController();
  inFlight = controller;
  inFlightKey = searchKey(next);
  const byImage = Boolean(next.like || next.upload);
  examples.hidden = true;
  setBusy(true); // the previous answer stays on screen, dimmed, until this one arrives
  statusLine.textContent = "Searching…";
  const count = next.k ?? pageSize();
  try {
    if (customScene(next)) {
      await searchScene(next, count, controller.signal);
      return;
    }
    // Text searches without a tag also ask how the candidates spread over the tags.
    const facetField = byImage || next.tag ? null : MODES[next.tab].filterField;
    const facets = facetField ? [facetField] : null;
    const found = await request(next, askFor(count), controller.signal, facets);
    if (controller.signal.aborted) return;
    clearAnswer();
    showTagFacets(facetField ? found.facets[facetField] ?? [] : [], filterByTag);
    const complete = found.hits.length < askFor(count) || askFor(count) >= MAX_RESULTS;
    current = { key: searchKey(next), hits: found.hits, complete, shown: 0, next };
    // The API sends relevance 0 where a mode has no calibration yet; a calibrated answer has
    // some hit above 0, or says weak_match. Without either, no label rather than "weak".
    current.calibrated = found.weakMatch || found.hits.some((h) => Number(h.relevance) > 0);
    showCount(count);
    showNotice(notice, found, searchSuggestion);
    if (DEBUG) showDebug(sceneFor(next), found);
  } catch (error) {
    if (controller.signal.aborted) return; // superseded by a newer search
    current = null;
    clearAnswer();
    statusLine.textContent = "Search failed.";
    showError(errorBox, error, byImage);
  } finally {
    if (inFlight === controller) {
      inFlight = null;
      setBusy(false);
    }
  }
}

/** A declared scene's first page (then as many more as `count` asks): facets for its keyword
 * fields not yet filtered, and the next page token for "More results". */
async function searchScene(next, count, signal) {
  const scene = customScene(next);
  const facets = scene.facets.filter((f) => !next.filters?.[f]?.length);
  const size = pageSize();
  const found = await request(next, size, signal, facets.length ? facets : null);
  if (signal.aborted) return;
  clearAnswer();
  $("facets").hidden = renderFacetGroups($("facets-list"), found.facets, filterBy) === 0;
  current = {
    key: searchKey(next), hits: found.hits, complete: !found.nextPageToken, shown: 0, next,
    scene, paging: { size, facets: facets.length ? facets : null, token: found.nextPageToken },
  };
  current.calibrated = found.weakMatch || found.hits.some((h) => Number(h.relevance) > 0);
  showNotice(notice, found, searchSuggestion);
  if (DEBUG) showDebug(sceneFor(next), found);
  await reveal(count);
}

/** The next page of a declared scene's answer, appended to its hits. */
async function nextPage(answer) {
  const { size, facets, token } = answer.paging;
  const found = await request(answer.next, size, undefined, facets, token);
  if (current !== answer) return;
  const have = new Set(answer.hits.map((h) => String(h.id)));
  answer.hits.push(...found.hits.filter((h) => !have.has(String(h.id))));
  answer.paging.token = found.nextPageToken;
  answer.complete = !found.nextPageToken;
}

/** Show `count` hits, first fetching the first 100 when more are wanted than are here. */
async function reveal(count) {
  const answer = current;
  if (count <= answer.hits.length || answer.complete) {
    showCount(count);
    return;
  }
  moreButton.setAttribute("aria-busy", "true");
  try {
    if (answer.scene) {
      while (current === answer && answer.hits.length < count && !answer.complete) {
        await nextPage(answer);
      }
      if (current === answer) showCount(count);
      return;
    }
    const found = await request(answer.next, MAX_RESULTS, undefined);
    if (current !== answer) return; // a newer search replaced this answer meanwhile
    // Shown hits stay where they are; the longer list adds only hits not yet shown.
    const have = new Set(answer.hits.map((h) => String(h.id)));
    answer.hits.push(...found.hits.filter((h) => !have.has(String(h.id))));
    answer.complete = true;
    showCount(count);
  } catch (error) {
    const byImage = Boolean(answer.next.like || answer.next.upload);
    if (current === answer) showError(errorBox, error, byImage);
  } finally {
    moreButton.removeAttribute("aria-busy");
  }
}

function showCount(count) {
  showAnswer(current, count, {
    debug: DEBUG, onTag: filterByTag, onOpen: openImage, onLike: moreLikeThis, onFilter: filterBy,
  });
}

function setBusy(busy) {
  results.setAttribute("aria-busy", String(busy));
  form.setAttribute("aria-busy", String(busy));
}

// --- actions --------------------------------------------------------------------------------

function submitQuery(how) {
  clearTimeout(debounceTimer);
  const q = queryInput.value.trim();
  const image = state.tab === "images" ? { like: state.like, upload: state.upload } : {};
  if (!q && !image.like && !image.upload) {
    statusLine.textContent = "Type a description to search.";
    queryInput.focus();
    return;
  }
  const filters = customScene(state) ? readFilterControls(filterControls, state.filters) : {};
  const not = state.tab === "images" ? negativeInput.value.trim() || null : null;
  // An attached image stays: the text refines it.
  navigate({ ...state, q, not, filters, like: null, upload: null, ...image, k: pageSize() }, how);
}

function searchSuggestion(suggestion) {
  queryInput.value = suggestion;
  navigate({ ...state, q: suggestion, like: null, upload: null, k: pageSize() }, "push");
}

/** Filter a declared scene's search by one value of a keyword field (replacing that field's). */
function filterBy(field, value) {
  navigate({ ...state, filters: { ...state.filters, [field]: [value] }, k: pageSize() }, "push");
}

function removeFilter(field, value) {
  const kept = (state.filters[field] ?? []).filter((v) => v !== value);
  const filters = { ...state.filters, [field]: kept };
  if (filters[field].length === 0) delete filters[field];
  navigate({ ...state, filters, k: pageSize() }, "push");
}

function filterByTag(tag) {
  navigate({ ...state, tag, k: pageSize() }, "push");
}

function openImage(hit, opener) {
  openViewer(hit, opener, { onTag: filterByTag, onLike: moreLikeThis });
}

/** Search by `hit`'s image, refined by the text in the box and the "but not" text. */
function moreLikeThis(hit) {
  rememberImage(String(hit.id), hit.document);
  clearTimeout(debounceTimer);
  const q = queryInput.value.trim();
  const not = negativeInput.value.trim() || null;
  const like = String(hit.id);
  navigate({ tab: "images", q, not, tag: null, like, upload: null, k: pageSize() }, "push");
}

/** Drop the attached image; the text alone searches (or nothing, without text). */
function removeImage() {
  navigate({ ...state, like: null, upload: null, k: pageSize() }, "push");
  queryInput.focus();
}

function searchByImage(file) {
  if (!file) return;
  const id = keepUpload(file);
  queryInput.value = ""; // the image is the query now
  const not = negativeInput.value.trim() || null;
  navigate({ tab: "images", q: "", not, tag: null, like: null, upload: id, k: pageSize() }, "push");
}

queryInput.addEventListener("input", () => {
  clearTimeout(debounceTimer);
  if (queryInput.value.trim().length < 3) return;
  debounceTimer = setTimeout(() => submitQuery("live"), DEBOUNCE_MS);
});

queryInput.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && queryInput.value) {
    event.preventDefault();
    clearTimeout(debounceTimer);
    queryInput.value = "";
  }
});

// "/" anywhere but in a text field brings the keyboard to the search box.
document.addEventListener("keydown", (event) => {
  if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  const typing = "input:not([type=radio], [type=checkbox], [type=file]), textarea, select";
  if (target.closest?.(`${typing}, [contenteditable], dialog[open]`)) return;
  event.preventDefault();
  queryInput.focus();
  queryInput.select();
});

moreButton.addEventListener("click", async () => {
  if (!current || moreButton.hasAttribute("aria-busy")) return;
  const before = current.shown;
  state = { ...state, k: Math.min(before + pageSize(), current.scene?.maxResults ?? MAX_RESULTS) };
  history.replaceState(history.state, "", urlFor(state, window.location.href));
  await reveal(state.k);
  // The button stays under the new hits and keeps focus; when it goes, the first new hit gets it.
  if (moreButton.hidden) results.children[before]?.focus({ preventScroll: true });
});

topKSelect.addEventListener("change", () => {
  if (!current) return;
  state = { ...state, k: pageSize() };
  history.replaceState(history.state, "", urlFor(state, window.location.href));
  if (current.scene) runSearch(state); // its pages are of one size (the page token says which)
  else reveal(state.k);
});

// A range or yes/no input changed: search again with it (Enter in one submits the form too).
filterControls.addEventListener("change", () => {
  const filters = readFilterControls(filterControls, state.filters);
  if (searchKey({ ...state, filters }) === searchKey(state)) return;
  navigate({ ...state, filters, k: pageSize() }, "push");
});

sceneSwitch.addEventListener("change", (event) => {
  if (event.target.name !== "scene") return;
  const q = queryInput.value.trim();
  const tab = event.target.value;
  navigate({ tab, q, tag: null, filters: {}, like: null, upload: null, k: pageSize() }, "push");
});

$("query-image-remove").addEventListener("click", removeImage);

$("filter-clear").addEventListener("click", () => {
  navigate({ ...state, tag: null, k: pageSize() }, "push");
  queryInput.focus();
});

imageFile.addEventListener("change", () => {
  searchByImage(imageFile.files?.[0]);
  imageFile.value = ""; // picking the same file again searches again
});
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
  submitQuery("push");
});

examples.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-query]");
  if (!button) return;
  queryInput.value = button.dataset.query;
  queryInput.focus(); // the examples hide once a search runs; keep keyboard focus somewhere useful
  submitQuery("push");
});

window.addEventListener("popstate", () => {
  show({ ...stateFromUrl(window.location.href), upload: history.state?.upload ?? null });
});

if (DEBUG) enableDebug();

// A shared or reloaded link (?tab=&q=&k=&tag=&like=&f.<field>=) reopens its search; a declared
// scene's tab waits for the scenes to be listed (an unknown one falls back to Questions).
if ([...topKSelect.options].some((o) => o.value === String(state.k))) {
  topKSelect.value = String(state.k);
}
const listed = customScenes().then((found) => {
  declared = found;
  addSceneTabs(sceneSwitch, found);
});
if (TABS.includes(state.tab)) {
  show({ ...state, upload: history.state?.upload ?? null });
} else {
  listed.then(() => {
    const known = declared.has(state.tab);
    show(known ? state : { ...state, tab: "qa", filters: {} });
  });
}
queryInput.focus();
