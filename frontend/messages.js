// What the page says about each failure: a fixed sentence per error code, never the server's
// own message (which may name hosts, files or objects the public should not see); and the
// notices above an answer (weak match, spelling).
import { element } from "./render.js";

const MESSAGES = {
  invalid_request: "The search could not run as asked. Try a shorter or different query.",
  malformed_json: "The page sent a request the service could not read. Reload the page.",
  unknown_scene: "This kind of search is not available on this server.",
  payload_too_large: "That image is too large. Try a smaller file.",
  unsupported_media_type: "The page sent a request the service does not accept. Reload the page.",
  store_unavailable: "The search index is not answering right now.",
  upstream_unavailable: "The search service is not answering right now.",
  model_unavailable: "The search model is still loading.",
  index_not_ready: "Nothing has been indexed for this search yet.",
  network_error: "Could not reach the search service. Check your connection.",
  bad_response: "The search service sent an answer the page could not read.",
  image_unavailable: "That image could not be loaded to search with it.",
  http_429: "Too many searches at once.",
};

const IMAGE_MESSAGES = {
  invalid_request: "That file could not be read as an image. Use a JPEG, PNG, WebP or GIF.",
};

const RETRYABLE = new Set([
  "store_unavailable", "upstream_unavailable", "model_unavailable", "network_error", "http_429",
]);

/** The sentence to show for `error` (an ApiError or anything thrown); `byImage` for uploads. */
export function errorMessage(error, { byImage = false } = {}) {
  const code = String(error?.code ?? "");
  let text = (byImage && IMAGE_MESSAGES[code]) || MESSAGES[code];
  if (!text) text = "Something went wrong with this search.";
  if (RETRYABLE.has(code) || Number(error?.status) >= 500) {
    text += Number.isInteger(error?.retryAfter) && error.retryAfter > 0
      ? ` Try again in ${error.retryAfter} s.`
      : " Try again in a moment.";
  }
  return text;
}

/** Fill `box` with the message and the stable code for `error`. */
export function showError(box, error, byImage) {
  const message = element("p", "error-message", errorMessage(error, { byImage }));
  const code = element("p", "error-code", "Code: ");
  code.append(element("code", "", String(error?.code ?? "unknown_error")));
  if (error?.status) code.append(` (HTTP ${error.status})`);
  box.replaceChildren(message, code);
  box.hidden = false;
}

/** Fill `box` with "did you mean" (a button calling `onSuggestion`), "showing results for"
 * and "no close match"; hidden when there is nothing to say. */
export function showNotice(box, { weakMatch, spelling }, onSuggestion) {
  box.replaceChildren();
  if (spelling && spelling.applied) {
    box.append("Showing results for ", element("strong", "", spelling.suggestion), ". ");
  } else if (spelling) {
    const suggestion = element("button", "suggestion", spelling.suggestion);
    suggestion.type = "button";
    suggestion.addEventListener("click", () => onSuggestion(spelling.suggestion));
    box.append("Did you mean ", suggestion, "? ");
  }
  if (weakMatch) box.append(element("span", "weak-match", "No close match; nearest results."));
  box.hidden = box.childNodes.length === 0;
}
