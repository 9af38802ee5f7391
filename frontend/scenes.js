// The scenes the server declares (`GET /v1/scenes`) as the page's tabs. The demo's two tabs
// keep their own look (Questions: qa; Images: t2i by text, i2i by image); every other scene
// searched by text becomes a tab of its own, its hits drawn from its declared fields.
import { scenes as fetchScenes } from "./api.js";

const DEMO_SCENES = new Set(["qa", "t2i", "i2i"]);
const FACET_TYPES = new Set(["keyword", "keyword_list"]);
const RANGE_TYPES = new Set(["integer", "float", "datetime"]);
const MAX_FACETS = 8; // the API's limit on facets per request

let loaded = null;

/** What the page needs of one declared scene. */
function describe(name, description) {
  const filterable = description.filterable ?? {};
  const fields = description.fields ?? {};
  const names = Object.keys(fields);
  const text = names.filter((f) => fields[f] === "text");
  return {
    name,
    label: fieldLabel(name),
    kind: description.kind,
    maxResults: Number.isInteger(description.max_results) ? description.max_results : 1000,
    fields,
    filterable,
    title: text[0] ?? names.find((f) => fields[f] === "keyword") ?? null,
    texts: text.slice(1),
    images: names.filter((f) => fields[f] === "image"),
    facets: Object.keys(filterable)
      .filter((f) => FACET_TYPES.has(filterable[f]))
      .slice(0, MAX_FACETS),
    ranges: Object.keys(filterable).filter((f) => RANGE_TYPES.has(filterable[f])),
    booleans: Object.keys(filterable).filter((f) => filterable[f] === "boolean"),
  };
}

/** The declared scenes searched by text other than the demo's, by name (once per page). */
export function customScenes() {
  loaded ??= fetchScenes().then((all) => {
    const found = new Map();
    for (const [name, description] of Object.entries(all)) {
      if (DEMO_SCENES.has(name) || description?.query !== "text") continue;
      found.set(name, describe(name, description));
    }
    return found;
  });
  return loaded;
}

/** "released_at" -> "Released at": a field or scene name as a label. */
export function fieldLabel(name) {
  const words = String(name).replaceAll("_", " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** One radio per custom scene, after the demo's two in `fieldset`. */
export function addSceneTabs(fieldset, scenes) {
  for (const scene of scenes.values()) {
    if (fieldset.querySelector(`input[value="${scene.name}"]`)) continue;
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "scene";
    input.value = scene.name;
    label.append(input, ` ${scene.label}`);
    fieldset.append(label);
  }
}
