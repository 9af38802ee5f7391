// The larger view of one image result: a modal dialog (Esc or a click outside closes it)
// with the caption, its tags as filters, "More like this" and a link to the original.
import { imageCaption, safeUrl, tagList } from "./render.js";

const dialog = document.getElementById("viewer");
const image = document.getElementById("viewer-image");
const caption = document.getElementById("viewer-caption");
const tags = document.getElementById("viewer-tags");
const like = document.getElementById("viewer-like");
const original = document.getElementById("viewer-original");
const close = document.getElementById("viewer-close");

let opener = null;
let actions = { onTag: () => {}, onLike: () => {} };
let shown = null;

close.addEventListener("click", () => dialog.close());
// A click on the backdrop lands on the dialog element itself, outside its body.
dialog.addEventListener("click", (event) => {
  if (event.target === dialog) dialog.close();
});
dialog.addEventListener("close", () => {
  image.removeAttribute("src");
  if (opener?.isConnected) opener.focus();
  opener = null;
});
like.addEventListener("click", () => {
  const hit = shown;
  dialog.close();
  if (hit) actions.onLike(hit);
});

/** Show `hit` large; `from` gets the focus back on close; `handlers` = {onTag, onLike}. */
export function openViewer(hit, from, handlers) {
  const doc = hit.document ?? {};
  shown = hit;
  opener = from;
  actions = handlers;
  const source = safeUrl(doc.url) ?? safeUrl(doc.thumbnail_url);
  if (source) image.src = source;
  else image.removeAttribute("src");
  caption.textContent = imageCaption(hit);
  const names = Array.isArray(doc.tags) ? doc.tags : [];
  tags.replaceChildren(
    ...(names.length
      ? [tagList(names, (tag) => { dialog.close(); handlers.onTag(tag); })]
      : []),
  );
  original.hidden = !safeUrl(doc.url);
  if (!original.hidden) original.href = safeUrl(doc.url);
  like.hidden = !hit.document;
  dialog.showModal();
  close.focus();
}
