// The page's state as a URL: tab, query, result count, tag filter, a declared scene's filters
// (f.<field>=value, repeated for any of several; f.<field>=min..max for a range), "more like
// this" image (the query refines it), "but not" text and debug flag. Each search is a history
// entry, so Back and Forward walk through searches and a copied link reopens the same search.

export const TABS = ["qa", "images"]; // the demo's tabs; a declared scene's name is a tab too
export const PAGE_SIZES = [10, 20, 50];
export const MAX_RESULTS = 100; // the API's top_k ceiling: it has no way past the first 100
const SCENE_NAME = /^[a-z][a-z0-9_]{0,31}$/;
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const MAX_FILTER_VALUES = 64;
const MAX_DEPTH = 10000; // a declared scene pages (next_page_token) up to its max_results

/** The state a URL describes; unknown or malformed values fall back to the defaults. */
export function stateFromUrl(href) {
  const params = new URL(href).searchParams;
  const tab = SCENE_NAME.test(params.get("tab") ?? "") ? params.get("tab") : "qa";
  const k = Number.parseInt(params.get("k") ?? "", 10);
  const deepest = TABS.includes(tab) ? MAX_RESULTS : MAX_DEPTH;
  return {
    tab,
    q: (params.get("q") ?? "").slice(0, 1000),
    k: Number.isInteger(k) && k >= 1 ? Math.min(k, deepest) : null,
    tag: params.get("tag") || null,
    like: tab === "images" ? params.get("like") || null : null,
    not: tab === "images" ? (params.get("not") ?? "").slice(0, 1000) || null : null,
    filters: TABS.includes(tab) ? {} : filtersFrom(params),
    debug: params.get("debug") === "1",
  };
}

/** `f.<field>` parameters -> {field: [value, ...]} (strings, as typed; the scene types them). */
function filtersFrom(params) {
  const filters = {};
  for (const [key, value] of params) {
    const field = key.startsWith("f.") ? key.slice(2) : "";
    if (!FIELD_NAME.test(field) || !value) continue;
    filters[field] ??= [];
    if (filters[field].length < MAX_FILTER_VALUES) filters[field].push(value.slice(0, 256));
  }
  return filters;
}

/** The URL for `state`, keeping the page's path. */
export function urlFor(state, href) {
  const url = new URL(href);
  url.search = "";
  const params = url.searchParams;
  if (state.tab !== "qa") params.set("tab", state.tab);
  if (state.like) params.set("like", state.like);
  if (state.q) params.set("q", state.q);
  if (state.not) params.set("not", state.not);
  if (state.tag) params.set("tag", state.tag);
  for (const field of Object.keys(state.filters ?? {}).sort()) {
    for (const value of state.filters[field]) params.append(`f.${field}`, value);
  }
  if (state.k) params.set("k", String(state.k));
  if (state.debug) params.set("debug", "1");
  return url.href;
}

/** The part of a state that decides what the server is asked (not how many are shown). */
export function searchKey(state) {
  const filters = Object.entries(state.filters ?? {}).sort();
  const image = [state.like, state.upload ?? null];
  return JSON.stringify([state.tab, state.q, state.not ?? null, state.tag, ...image, filters]);
}
