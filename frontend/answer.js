// The answer on screen: its hits (appended or trimmed in place, so shown hits stay put), the
// status line with the count, the end note, the tag facets; cleared before the next answer.
import { hideDebugAnswer } from "./debug.js";
import { readableTag, renderHit, renderImageHit } from "./render.js";
import { renderDocumentHit } from "./render_document.js";
import { MAX_RESULTS } from "./state.js";

const $ = (id) => document.getElementById(id);
const statusLine = $("status");
const notice = $("notice");
const errorBox = $("error");
const results = $("results");
const moreButton = $("more");
const endNote = $("end-note");

/** The tags of the matched candidates with their counts, each a button that filters by it. */
export function showTagFacets(counts, onTag) {
  const list = $("facets-list");
  list.replaceChildren(
    ...counts.slice(0, 12).map(({ value, count }) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "facet";
      button.dataset.tag = String(value);
      button.textContent = `${readableTag(String(value))} ${count}`;
      button.addEventListener("click", () => onTag(String(value)));
      return button;
    }),
  );
  $("facets").hidden = counts.length === 0;
}

/** What a search was for, as the status line says it. */
export function subjectOf(next) {
  const text = next.q ? ` and “${next.q}”` : "";
  const unlike = next.not ? `, but not “${next.not}”` : "";
  if (next.upload) return `your image${text}${unlike}`;
  if (next.like) return `this image${text}${unlike}`;
  if (unlike) return `“${next.q}”${unlike}`;
  return `“${next.q}”`;
}

/** Show the first `count` hits of `current` (the answer on screen), appending (or trimming)
 * in place; `actions`: {debug, onTag, onOpen, onLike, onFilter} for the hits' buttons. */
export function showAnswer(current, count, actions) {
  const hits = current.hits;
  const target = Math.max(0, Math.min(count, hits.length));
  while (results.children.length > target) results.lastElementChild.remove();
  const scene = current.scene;
  const render = scene
    ? (hit, options) => renderDocumentHit(hit, scene, options)
    : current.next.tab === "qa" ? renderHit : renderImageHit;
  const handlers = { ...actions, calibrated: current.calibrated };
  results.append(...hits.slice(results.children.length, target).map((h) => render(h, handlers)));
  current.shown = target;
  moreButton.hidden = target >= hits.length && current.complete;
  const ceiling = scene ? scene.maxResults : MAX_RESULTS;
  const capped = hits.length >= ceiling || (scene && current.complete && hits.length > 0
    && hits.length + current.paging.size > ceiling);
  endNote.hidden = !(capped && target >= hits.length);
  endNote.textContent = `These are the top ${hits.length}. Refine the search to see others.`;
  const subject = subjectOf(current.next);
  const plural = (n) => `${n} ${n === 1 ? "result" : "results"}`;
  if (hits.length === 0) {
    statusLine.textContent = `No results for ${subject}. Try describing it differently.`;
  } else if (!current.complete) {
    statusLine.textContent = `Top ${target} for ${subject}`; // the count comes with the first 100
  } else {
    const total = capped ? `${hits.length}+ results` : plural(hits.length);
    const showing = target < hits.length ? ` · showing ${target}` : "";
    statusLine.textContent = `${total} for ${subject}${showing}`;
  }
}

/** Empty the answer area before the next answer. */
export function clearAnswer() {
  results.replaceChildren();
  errorBox.hidden = true;
  errorBox.replaceChildren();
  notice.hidden = true;
  hideDebugAnswer();
  moreButton.hidden = true;
  endNote.hidden = true;
  $("facets").hidden = true;
}
