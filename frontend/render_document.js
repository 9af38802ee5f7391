// One hit of a declared scene, drawn from its declared fields: the first text field as the
// title, the other text fields below it (query terms marked), a picture where a field is an
// image, and the remaining fields as name/value pairs (filterable keywords as filter buttons).
import { element, markedElement, relevanceBadge, safeUrl, unavailableHit } from "./render.js";
import { fieldLabel } from "./scenes.js";

function shownValue(value, type) {
  if (type === "boolean") return value ? "yes" : "no";
  if (type === "datetime") return String(value).replace(/T00:00:00(\.0+)?(Z|[+-]00:00)?$/, "");
  if (type === "float" && typeof value === "number") {
    return value.toLocaleString(undefined, { maximumFractionDigits: 2 });
  }
  return Array.isArray(value) ? value.join(", ") : String(value);
}

function picture(doc, scene) {
  const source = scene.images.map((f) => safeUrl(doc[f])).find(Boolean);
  if (!source) return null;
  const frame = element("span", "doc-frame");
  const img = element("img", "doc-image");
  img.src = source;
  img.alt = ""; // the title beside it names the item
  img.loading = "lazy";
  img.decoding = "async";
  frame.append(img);
  return frame;
}

function facts(doc, scene, onFilter) {
  const list = element("dl", "doc-fields");
  const shown = new Set([scene.title, ...scene.texts, ...scene.images]);
  for (const [field, type] of Object.entries(scene.fields)) {
    const value = doc[field];
    if (shown.has(field) || value === undefined || value === null || value === "") continue;
    const item = element("div", "doc-field");
    item.dataset.field = field;
    const term = element("dd");
    if (scene.facets.includes(field)) {
      for (const one of Array.isArray(value) ? value : [value]) {
        const button = element("button", "hit-category", String(one));
        button.type = "button";
        button.dataset.field = field;
        button.dataset.value = String(one);
        button.title = `Show only ${fieldLabel(field)} “${one}”`;
        button.addEventListener("click", () => onFilter(field, String(one)));
        term.append(button);
      }
    } else {
      term.textContent = shownValue(value, type);
    }
    item.append(element("dt", "", fieldLabel(field)), term);
    list.append(item);
  }
  return list;
}

/** One hit of `scene` (a described custom scene); `onFilter(field, value)` filters by a value. */
export function renderDocumentHit(hit, scene, { debug = false, calibrated = true, onFilter }) {
  const item = element("li", "hit doc-hit");
  item.dataset.id = String(hit.id ?? "");
  item.tabIndex = -1;
  const doc = hit.document;
  if (!doc) return unavailableHit(item, hit, debug, calibrated);
  const header = element("div", "hit-header");
  const marks = hit.highlights ?? {};
  const title = scene.title && doc[scene.title] ? String(doc[scene.title]) : String(hit.id);
  header.append(
    markedElement("h2", "hit-question", title, marks[scene.title]),
    relevanceBadge(hit, debug, calibrated),
  );
  const body = element("div", "doc-body");
  body.append(header);
  for (const field of scene.texts) {
    if (doc[field]) body.append(markedElement("p", "hit-answer", String(doc[field]), marks[field]));
  }
  body.append(facts(doc, scene, onFilter));
  const image = picture(doc, scene);
  if (image) item.append(image);
  item.append(body);
  return item;
}
