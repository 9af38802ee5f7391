// Client for the mmsearch HTTP API; the only module that talks to the server.

const CONFIG_URL = new URL("config.json", import.meta.url);

let baseUrlPromise = null;

/** Resolve the API base URL from config.json once; "" (same origin) if it cannot be read. */
function apiBaseUrl() {
  if (baseUrlPromise === null) {
    baseUrlPromise = fetch(CONFIG_URL, { cache: "no-cache" })
      .then((response) => (response.ok ? response.json() : {}))
      .then((config) => (typeof config.apiBaseUrl === "string" ? config.apiBaseUrl : ""))
      .catch(() => "")
      .then((url) => url.replace(/\/+$/, ""));
  }
  return baseUrlPromise;
}

/**
 * An API failure the page can show: the server's stable `code`, HTTP `status` (0 if none) and
 * retry hint. The server's own message is deliberately not kept: the page shows a fixed
 * message per code (messages.js), so nothing internal can reach the screen.
 */
export class ApiError extends Error {
  constructor({ code, status = 0, retryAfter = null }) {
    super(code);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

function retryAfterSeconds(response) {
  const seconds = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
}

function errorFromResponse(response, body) {
  const detail = body && typeof body === "object" ? body.error ?? {} : {};
  const code = typeof detail.code === "string" && /^[a-z0-9_]{1,64}$/.test(detail.code)
    ? detail.code
    : `http_${response.status}`;
  return new ApiError({ code, status: response.status, retryAfter: retryAfterSeconds(response) });
}

async function post(path, request, signal) {
  let response;
  try {
    response = await fetch(`${await apiBaseUrl()}${path}`, { method: "POST", ...request, signal });
  } catch (cause) {
    if (cause?.name === "AbortError") throw cause;
    throw new ApiError({ code: "network_error" });
  }
  const body = await readJson(response);
  if (!response.ok) throw errorFromResponse(response, body);
  if (!body || typeof body !== "object") {
    throw new ApiError({ code: "bad_response", status: response.status });
  }
  return body;
}

function jsonRequest(body) {
  return {
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  };
}

/** The server's health: model names, including the image space in use. */
export async function health() {
  try {
    const response = await fetch(`${await apiBaseUrl()}/v1/health`);
    return response.ok ? await response.json() : {};
  } catch {
    return {};
  }
}

/** The configured scenes with each layer's experiments (`GET /v1/scenes`); {} on failure. */
export async function scenes() {
  try {
    const response = await fetch(`${await apiBaseUrl()}/v1/scenes`);
    return response.ok ? (await response.json()).scenes ?? {} : {};
  } catch {
    return {};
  }
}

function spellingOf(value) {
  if (!value || typeof value !== "object" || typeof value.suggestion !== "string") return null;
  return { suggestion: value.suggestion, applied: value.applied === true };
}

/** `{field: [{value, count}]}` with well-formed entries only; {} when absent. */
function facetsOf(value) {
  if (!value || typeof value !== "object") return {};
  const facets = {};
  for (const [field, counts] of Object.entries(value)) {
    if (!Array.isArray(counts)) continue;
    facets[field] = counts.filter(
      (c) => c && ["string", "number", "boolean"].includes(typeof c.value)
        && Number.isInteger(c.count),
    );
  }
  return facets;
}

/**
 * Search a scene. `image` is a Blob (an upload: sent as multipart/form-data, no base64
 * inflation against the body limit) or base64 text (a shown image: JSON); either way it is
 * the `query_image`, and the `query` text refines it. `negativeQuery`: text the hits
 * should not look like (image scenes). `pageToken` asks for the page after the one whose
 * answer carried it (same request otherwise). Returns `{hits, timings_ms, experiments,
 * weakMatch, spelling, facets, nextPageToken, composition}`; fields a server does not send
 * yet (`weak_match`, `spelling`, a hit's `relevance`) come back false/null.
 * Throws ApiError for non-2xx answers, unreadable bodies and network failures.
 */
export async function search({
  scene, query, image = null, negativeQuery = null, topK = 10, filters = null, facets = null,
  pageToken = null, userId = null, forced = {}, signal,
} = {}) {
  const debug = Object.keys(forced).length > 0 ? { experiments: forced } : undefined;
  let request;
  if (image instanceof Blob) {
    const form = new FormData();
    form.append("scene", scene);
    if (query) form.append("query", query);
    if (negativeQuery) form.append("negative_query", negativeQuery);
    form.append("top_k", String(topK));
    form.append("query_image", image, image.name || "image");
    if (userId) form.append("user_id", userId);
    if (filters) form.append("filters", JSON.stringify(filters));
    if (debug) form.append("debug", JSON.stringify(debug));
    request = { headers: { Accept: "application/json" }, body: form };
  } else {
    const body = { scene, query, top_k: topK, debug };
    if (negativeQuery) body.negative_query = negativeQuery;
    if (image) body.query_image = image;
    if (userId) body.user_id = userId;
    if (filters) body.filters = filters;
    if (facets) body.facets = facets;
    if (pageToken) body.page_token = pageToken;
    request = jsonRequest(body);
  }
  const body = await post("/v1/search", request, signal);
  if (!Array.isArray(body.hits)) throw new ApiError({ code: "bad_response", status: 200 });
  return {
    hits: body.hits,
    timings_ms: body.timings_ms ?? {},
    experiments: body.experiments ?? {},
    weakMatch: body.weak_match === true,
    spelling: spellingOf(body.spelling),
    facets: facetsOf(body.facets),
    nextPageToken: typeof body.next_page_token === "string" ? body.next_page_token : null,
    composition: body.composition && typeof body.composition === "object" ? body.composition : null,
  };
}

/** Documents of a scene by id (`POST /v1/documents:batchGet`): `{documents, missing}`. */
export async function documents({ scene, ids, signal } = {}) {
  const body = await post("/v1/documents:batchGet", jsonRequest({ scene, ids }), signal);
  return {
    documents: Array.isArray(body.documents) ? body.documents : [],
    missing: Array.isArray(body.missing) ? body.missing : [],
  };
}

function base64Of(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] ?? "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

/** The bytes of an image the page shows, base64 (to search with it as `query_image`);
 * ApiError image_unavailable when they cannot be fetched. */
export async function imageBase64(url, signal) {
  try {
    const response = await fetch(url, { signal });
    if (!response.ok) throw new Error(String(response.status));
    return await base64Of(await response.blob());
  } catch (cause) {
    if (cause?.name === "AbortError") throw cause;
    throw new ApiError({ code: "image_unavailable" });
  }
}
