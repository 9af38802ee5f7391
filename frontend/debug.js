// Developer controls, shown only with ?debug=1: the Experiments drawer (force an experiment
// per layer), per-stage timings, the matching mode and what ran.
import { health, scenes } from "./api.js";
import { element } from "./render.js";

const TIMING_STAGES = ["preprocess", "match", "rank", "summary", "total"];
const LAYERS = ["qp", "match", "rank", "summary"];

const drawer = document.getElementById("debug");
const layers = document.getElementById("debug-layers");
const ran = document.getElementById("debug-ran");
const timingsLine = document.getElementById("timings");
const modeLine = document.getElementById("mode");

let described = {};
let imageSpace = "";
let sceneShown = "qa";

/** Show the drawer and load what it lists (`GET /v1/scenes`, `GET /v1/health`). */
export function enableDebug() {
  drawer.hidden = false;
  scenes().then((found) => {
    described = found;
    renderLayers(sceneShown);
  });
  health().then((info) => {
    imageSpace = typeof info.image_space === "string" ? info.image_space : "";
  });
}

/** One select per layer of `scene`: "bucketed" or a forced experiment (kept across scenes). */
export function renderLayers(scene) {
  sceneShown = scene;
  if (drawer.hidden) return;
  const chosen = forcedExperiments();
  layers.replaceChildren();
  for (const layer of LAYERS) {
    const label = element("label", "debug-layer", `${layer} `);
    const select = element("select");
    select.dataset.layer = layer;
    select.append(new Option("bucketed", ""));
    for (const [name, ratio] of Object.entries(described[scene]?.layers?.[layer] ?? {})) {
      select.append(new Option(`${name} (${ratio})`, name));
    }
    if (chosen[layer]) select.value = chosen[layer];
    label.append(select);
    layers.append(label);
  }
}

/** The experiments forced in the drawer: {layer: experiment}. */
export function forcedExperiments() {
  const forced = {};
  for (const select of layers.querySelectorAll("select")) {
    if (select.value) forced[select.dataset.layer] = select.value;
  }
  return forced;
}

function formatMs(value) {
  return typeof value === "number" && Number.isFinite(value) ? `${value.toFixed(1)} ms` : "– ms";
}

function describeMode(scene, match) {
  if (scene === "i2i") return `Matching pixels: ${imageSpace || "image space"}.`;
  if (scene !== "t2i") return "";
  if (match === "caption") {
    return "Matching captions (mode: caption). Pixels are matched only with a CLIP model.";
  }
  return `Matching mode: ${match}.`;
}

/** Timings, the matching mode and the experiments that ran for one answer. */
export function showDebug(scene, { timings_ms: timings, experiments, composition }) {
  timingsLine.textContent = TIMING_STAGES.map((s) => `${s} ${formatMs(timings?.[s])}`).join(" · ");
  timingsLine.hidden = false;
  ran.textContent = `Ran: ${LAYERS.map((l) => `${l} ${experiments?.[l] ?? "?"}`).join(" · ")}`;
  modeLine.textContent = typeof composition?.formula === "string"
    ? `Mixed query (${composition.method}): ${composition.formula}`
    : describeMode(scene, experiments?.match ?? "");
  modeLine.hidden = !modeLine.textContent;
}

export function hideDebugAnswer() {
  timingsLine.hidden = true;
  modeLine.hidden = true;
}
