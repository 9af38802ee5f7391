// The page's state as a URL: tab, query, result count, tag filter, "more like this" image and
// debug flag. Each search is a history entry, so Back and Forward walk through searches and a
// copied link reopens the same search.

export const TABS = ["qa", "images"];
export const PAGE_SIZES = [10, 20, 50];
export const MAX_RESULTS = 100; // the API's top_k ceiling: it has no way past the first 100

/** The state a URL describes; unknown or malformed values fall back to the defaults. */
export function stateFromUrl(href) {
  const params = new URL(href).searchParams;
  const tab = TABS.includes(params.get("tab")) ? params.get("tab") : "qa";
  const k = Number.parseInt(params.get("k") ?? "", 10);
  return {
    tab,
    q: (params.get("q") ?? "").slice(0, 1000),
    k: Number.isInteger(k) && k >= 1 ? Math.min(k, MAX_RESULTS) : null,
    tag: params.get("tag") || null,
    like: tab === "images" ? params.get("like") || null : null,
    debug: params.get("debug") === "1",
  };
}

/** The URL for `state`, keeping the page's path. */
export function urlFor(state, href) {
  const url = new URL(href);
  url.search = "";
  const params = url.searchParams;
  if (state.tab !== "qa") params.set("tab", state.tab);
  if (state.like) params.set("like", state.like);
  else if (state.q) params.set("q", state.q);
  if (state.tag) params.set("tag", state.tag);
  if (state.k) params.set("k", String(state.k));
  if (state.debug) params.set("debug", "1");
  return url.href;
}

/** The part of a state that decides what the server is asked (not how many are shown). */
export function searchKey(state) {
  return JSON.stringify([state.tab, state.q, state.tag, state.like, state.upload ?? null]);
}
