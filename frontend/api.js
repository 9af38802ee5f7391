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

/** An API failure the page can show: `code` and `message` from the server, HTTP `status` (0 if none). */
export class ApiError extends Error {
  constructor({ code, message, status = 0, retryAfter = null }) {
    super(message);
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
  return new ApiError({
    code: typeof detail.code === "string" ? detail.code : `http_${response.status}`,
    // API Gateway's own errors carry a top-level "message" instead of "error".
    message:
      (typeof detail.message === "string" && detail.message) ||
      (typeof body?.message === "string" && body.message) ||
      response.statusText ||
      `Request failed with status ${response.status}`,
    status: response.status,
    retryAfter: retryAfterSeconds(response),
  });
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

/**
 * Search a scene and return `{hits, timings_ms, experiments}`; with `image` (a File) the
 * image is uploaded as multipart/form-data (scene i2i).
 * Throws ApiError for non-2xx answers, unreadable bodies and network failures.
 */
export async function search({ scene, query, image = null, topK = 10, forced = {}, signal } = {}) {
  const debug = Object.keys(forced).length > 0 ? { experiments: forced } : undefined;
  const url = `${await apiBaseUrl()}/v1/search`;
  let request;
  if (image) {
    const form = new FormData();
    form.append("scene", scene);
    form.append("top_k", String(topK));
    form.append("image", image, image.name || "image");
    if (debug) form.append("debug", JSON.stringify(debug));
    request = { method: "POST", headers: { Accept: "application/json" }, body: form };
  } else {
    request = {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ scene, query, top_k: topK, debug }),
    };
  }
  let response;
  try {
    response = await fetch(url, { ...request, signal });
  } catch (cause) {
    if (cause?.name === "AbortError") throw cause;
    throw new ApiError({ code: "network_error", message: "Could not reach the search service." });
  }

  const body = await readJson(response);
  if (!response.ok) throw errorFromResponse(response, body);
  if (!body || !Array.isArray(body.hits)) {
    throw new ApiError({
      code: "bad_response",
      message: "The search service sent an unreadable answer.",
      status: response.status,
    });
  }
  return { hits: body.hits, timings_ms: body.timings_ms ?? {}, experiments: body.experiments ?? {} };
}
