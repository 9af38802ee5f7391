// A declared scene's filters: the page keeps them as {field: [text, ...]} (as in the URL) and
// turns them into the API's filters by the field's declared type: keywords as a value or any
// of several, numbers and datetimes as "min..max" ranges, booleans as true/false. Ranges and
// booleans have inputs under the search box; keyword filters come from facets and show as
// removable chips.
import { element } from "./render.js";
import { fieldLabel } from "./scenes.js";

const RANGE = "..";
const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;

function rangeOf(text, type) {
  const [low = "", high = ""] = String(text).split(RANGE);
  const value = (part, end) => {
    if (!part) return null;
    if (type === "datetime") {
      // A day typed as a maximum includes that day.
      return DATE_ONLY.test(part) ? `${part}T${end ? "23:59:59" : "00:00:00"}Z` : part;
    }
    const number = Number(part);
    return Number.isFinite(number) ? number : null;
  };
  const range = {};
  if (value(low, false) !== null) range.gte = value(low, false);
  if (value(high, true) !== null) range.lte = value(high, true);
  return Object.keys(range).length ? range : null;
}

/** The API's `filters` for `filters` in `scene` (fields it cannot filter are dropped). */
export function apiFilters(scene, filters) {
  const out = {};
  for (const [field, values] of Object.entries(filters ?? {})) {
    const type = scene.filterable[field];
    if (!type || values.length === 0) continue;
    if (type === "keyword" || type === "keyword_list") {
      out[field] = values.length === 1 ? values[0] : values;
    } else if (type === "boolean") {
      if (values[0] === "true" || values[0] === "false") out[field] = values[0] === "true";
    } else {
      const range = rangeOf(values[0], type);
      if (range) out[field] = range;
    }
  }
  return Object.keys(out).length ? out : null;
}

function rangeInput(scene, field, bound) {
  const input = element("input");
  input.id = `range-${field}-${bound}`;
  input.dataset.field = field;
  input.dataset.bound = bound;
  input.type = scene.filterable[field] === "datetime" ? "date" : "number";
  if (input.type === "number") {
    input.step = scene.filterable[field] === "integer" ? "1" : "any";
    input.inputMode = "decimal";
  }
  const label = element("label", "range-bound", bound === "min" ? "from " : "to ");
  label.append(input);
  return label;
}

function booleanSelect(field) {
  const select = element("select");
  select.id = `bool-${field}`;
  select.dataset.field = field;
  select.append(new Option("any", ""), new Option("yes", "true"), new Option("no", "false"));
  const label = element("label", "range", `${fieldLabel(field)} `);
  label.append(select);
  return label;
}

/** Range and yes/no inputs for `scene`, showing the values in `filters`. */
export function renderFilterControls(container, scene, filters) {
  if (!scene) {
    container.hidden = true;
    container.replaceChildren();
    delete container.dataset.scene;
    return;
  }
  if (container.dataset.scene !== scene.name) {
    container.dataset.scene = scene.name;
    container.replaceChildren(
      ...scene.ranges.map((field) => {
        const group = element("fieldset", "range");
        group.append(
          element("legend", "range-name", fieldLabel(field)),
          rangeInput(scene, field, "min"),
          rangeInput(scene, field, "max"),
        );
        return group;
      }),
      ...scene.booleans.map(booleanSelect),
    );
  }
  container.hidden = container.childElementCount === 0;
  for (const input of container.querySelectorAll("input[data-bound]")) {
    const [low = "", high = ""] = String(filters[input.dataset.field]?.[0] ?? "").split(RANGE);
    input.value = input.dataset.bound === "min" ? low : high;
  }
  for (const select of container.querySelectorAll("select[data-field]")) {
    select.value = filters[select.dataset.field]?.[0] ?? "";
  }
}

/** `filters` with the ranges and yes/no values as the inputs in `container` now say. */
export function readFilterControls(container, filters) {
  const next = { ...filters };
  const ranges = {};
  for (const input of container.querySelectorAll("input[data-bound]")) {
    ranges[input.dataset.field] ??= { min: "", max: "" };
    ranges[input.dataset.field][input.dataset.bound] = input.value.trim();
  }
  for (const [field, { min, max }] of Object.entries(ranges)) {
    if (min || max) next[field] = [`${min}${RANGE}${max}`];
    else delete next[field];
  }
  for (const select of container.querySelectorAll("select[data-field]")) {
    if (select.value) next[select.dataset.field] = [select.value];
    else delete next[select.dataset.field];
  }
  return next;
}

/** A removable chip per keyword filter in force. */
export function renderActiveFilters(container, scene, filters, onRemove) {
  const chips = [];
  for (const field of scene?.facets ?? []) {
    for (const value of filters[field] ?? []) {
      const chip = element("button", "filter-chip", `${fieldLabel(field)}: ${value} ✕`);
      chip.type = "button";
      chip.dataset.field = field;
      chip.dataset.value = value;
      chip.setAttribute("aria-label", `Remove filter ${fieldLabel(field)} ${value}`);
      chip.addEventListener("click", () => onRemove(field, value));
      chips.push(chip);
    }
  }
  container.replaceChildren(...chips);
  container.hidden = chips.length === 0;
}

/** Value counts per keyword field, each value a button that filters by it. */
export function renderFacetGroups(list, facets, onPick) {
  const groups = [];
  for (const [field, counts] of Object.entries(facets)) {
    if (counts.length === 0) continue;
    const group = element("span", "facet-group");
    group.dataset.field = field;
    group.append(element("span", "facet-field", `${fieldLabel(field)}:`));
    for (const { value, count } of counts.slice(0, 12)) {
      const button = element("button", "facet", `${value} ${count}`);
      button.type = "button";
      button.dataset.field = field;
      button.dataset.value = String(value);
      button.addEventListener("click", () => onPick(field, String(value)));
      group.append(button);
    }
    groups.push(group);
  }
  list.replaceChildren(...groups);
  return groups.length;
}
