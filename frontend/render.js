// Builds the DOM for hits. Server strings only ever reach the DOM through text nodes, and
// only http(s) URLs become image sources.

/** Only http(s) and same-site URLs from the server become links or image sources. */
export function safeUrl(value) {
  try {
    const url = new URL(String(value ?? ""), window.location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Calibrated relevance (the share of hits at this value that were judged relevant) -> words.
const LEVELS = [
  [0.6, "close", "close match"],
  [0.3, "related", "related"],
  [0, "weak", "weak"],
];

/** The label for a calibrated relevance in [0, 1], or null when the server sent none. */
export function relevanceLabel(relevance) {
  if (typeof relevance !== "number" || !Number.isFinite(relevance)) return null;
  const value = Math.min(Math.max(relevance, 0), 1);
  const [, level, text] = LEVELS.find(([floor]) => value >= floor);
  return { level, text, value };
}

/** "noun.animal" -> "animal", "body_part" -> "body part": a tag as people say it. */
export function readableTag(tag) {
  return String(tag ?? "").split(".").pop().replaceAll("_", " ").trim() || String(tag ?? "");
}

export function relevanceBadge(hit, debug, calibrated) {
  const badge = element("span", "hit-relevance");
  const label = calibrated ? relevanceLabel(hit.relevance) : null;
  if (label) {
    badge.textContent = label.text;
    badge.dataset.level = label.level;
    badge.title = `Relevance ${Math.round(label.value * 100)}%`;
  }
  // Raw scores change meaning with the match mode (RRF, BM25, cosine): developers only.
  if (debug && typeof hit.score === "number" && Number.isFinite(hit.score)) {
    badge.append(element("span", "hit-raw-score", ` raw ${hit.score.toFixed(3)}`));
  }
  return badge;
}

/**
 * An element whose text has the query's terms wrapped in <mark>. `spans` are [start, end)
 * offsets in Unicode code points (the API's unit), so the text is split with Array.from.
 */
export function markedElement(tag, className, text, spans) {
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

/** Tags as buttons that filter the search to that tag. */
export function tagList(tags, onTag) {
  const list = element("ul", "hit-categories");
  list.setAttribute("aria-label", "Tags");
  for (const tag of tags) {
    const button = element("button", "hit-category", readableTag(tag));
    button.type = "button";
    button.dataset.tag = String(tag);
    button.title = `Show only “${readableTag(tag)}”`;
    button.addEventListener("click", () => onTag(String(tag)));
    const item = element("li");
    item.append(button);
    list.append(item);
  }
  return list;
}

/** `item` as a hit whose document could not be fetched: its id and "document unavailable". */
export function unavailableHit(item, hit, debug, calibrated) {
  item.classList.add("hit-unavailable");
  const header = element("div", "hit-header");
  const id = element("h2", "hit-id", String(hit.id ?? ""));
  header.append(id, relevanceBadge(hit, debug, calibrated));
  item.append(header, element("p", "hit-answer", "document unavailable"));
  return item;
}

/** One question/answer hit. */
export function renderHit(hit, { debug = false, calibrated = true, onTag }) {
  const item = element("li", "hit");
  item.tabIndex = -1; // "More results" moves focus here when its button goes away
  const doc = hit.document;
  if (!doc) return unavailableHit(item, hit, debug, calibrated);
  const header = element("div", "hit-header");
  const marks = hit.highlights ?? {};
  header.append(
    markedElement("h2", "hit-question", doc.question, marks.question),
    relevanceBadge(hit, debug, calibrated),
  );
  item.append(header, markedElement("p", "hit-answer", doc.answer, marks.answer));
  const categories = Array.isArray(doc.category) ? doc.category : [];
  if (categories.length > 0) item.append(tagList(categories, onTag));
  return item;
}

export function imageCaption(hit) {
  const doc = hit.document ?? {};
  return String(doc.caption || doc.name || hit.id || "");
}

/**
 * One image hit: a button (thumbnail + caption, read once: the image itself is decorative
 * because the caption names it) that opens the larger view, and "More like this".
 */
export function renderImageHit(hit, { debug = false, calibrated = true, onOpen, onLike }) {
  const item = element("li", "hit image-hit");
  item.tabIndex = -1;
  const caption = imageCaption(hit);
  const open = element("button", "image-open");
  open.type = "button";
  const frame = element("span", "image-frame");
  const thumbnail = safeUrl(hit.document?.thumbnail_url);
  if (thumbnail) {
    const img = element("img", "image-thumb");
    img.src = thumbnail;
    img.alt = "";
    img.loading = "lazy";
    img.decoding = "async";
    frame.append(img);
  }
  open.append(frame, element("span", "image-caption", caption));
  open.addEventListener("click", () => onOpen(hit, open));
  const footer = element("div", "image-footer");
  footer.append(relevanceBadge(hit, debug, calibrated));
  if (hit.document) {
    const like = element("button", "more-like", "More like this");
    like.type = "button";
    like.addEventListener("click", () => onLike(hit));
    footer.append(like);
  }
  item.append(open, footer);
  return item;
}
