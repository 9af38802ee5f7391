// The image a search is made with: an upload (kept in memory per history entry: bytes do
// not fit in a URL) or a result's own image ("more like this", which a URL can name by id).
import { documents, imageBase64 } from "./api.js";
import { imageCaption, safeUrl } from "./render.js";

const box = document.getElementById("query-image");
const preview = document.getElementById("query-image-preview");
const label = document.getElementById("query-image-label");

const uploads = new Map(); // upload id (in history.state) -> File
const liked = new Map(); // image id -> its document, so "more like this" needs no lookup
let previewUrl = null;
let uploadCount = 0;

function gone() {
  return Object.assign(new Error("image unavailable"), { code: "image_unavailable" });
}

function setPreview(src, text) {
  if (previewUrl && previewUrl !== src) URL.revokeObjectURL(previewUrl);
  previewUrl = src?.startsWith("blob:") ? src : null;
  box.hidden = !src;
  if (src) preview.src = src;
  else preview.removeAttribute("src");
  label.textContent = text;
}

export function clearQueryImage() {
  setPreview(null, "");
}

/** Keep `file` for a history entry; returns the id the entry stores. */
export function keepUpload(file) {
  uploadCount += 1;
  const id = `${Date.now().toString(36)}-${uploadCount}`;
  uploads.set(id, file);
  return id;
}

/** Remember a result's document, so searching by it needs no lookup. */
export function rememberImage(id, document) {
  if (document) liked.set(id, document);
}

/** The image `state` searches with (an upload's File, or a result's image as base64), shown
 * as the query; null for a text search. */
export async function queryImageFor(state, signal) {
  if (state.upload) {
    const file = uploads.get(state.upload);
    if (!file) throw gone(); // a reloaded page no longer holds the bytes
    setPreview(URL.createObjectURL(file), `Searching by your image “${file.name || "upload"}”`);
    return file;
  }
  if (!state.like) return null;
  let doc = liked.get(state.like);
  if (!doc) {
    doc = (await documents({ scene: "t2i", ids: [state.like], signal })).documents[0];
    if (!doc) throw gone();
    liked.set(state.like, doc);
  }
  const caption = imageCaption({ document: doc, id: state.like });
  setPreview(safeUrl(doc.thumbnail_url) ?? safeUrl(doc.url), `Images like “${caption}”`);
  // The thumbnail (512 px) is more than an image space looks at (224 px for CLIP) and keeps
  // the upload small and under the API's body limit, whatever the original weighs.
  const source = safeUrl(doc.thumbnail_url) ?? safeUrl(doc.url);
  if (!source) throw gone();
  return imageBase64(source, signal);
}
