// The query image: chosen, dropped, pasted or photographed; previewed, optionally cropped. Choosing or dropping
// several images searches for what they share (the first is previewed).

import { createCamera } from "./camera.js";
import { createCropper, MAX_SIDE, toJpeg } from "./crop.js";
import { $ } from "./dom.js";

// Larger images are shrunk in the browser before upload (to MAX_SIDE px, JPEG): a 48-megapixel phone photo would
// exceed the server's upload limit, and no search needs that many pixels.
const SHRINK_BYTES = 4 * 2 ** 20;
const SHRINK_PIXELS = 12e6;

const formatBytes = (n) => (n < 1024 ? `${n} B` : n < 2 ** 20 ? `${(n / 1024).toFixed(0)} KB`
  : `${(n / 2 ** 20).toFixed(1)} MB`);

function firstImageFile(list) {
  const files = Array.from(list || []);
  return files.find((file) => file.type.startsWith("image/")) || files[0] || null;
}

function imageFiles(list) {
  const files = Array.from(list || []);
  const images = files.filter((file) => file.type.startsWith("image/"));
  return images.length ? images : files.slice(0, 1);
}

const isLarge = (blob, image) => blob.size > SHRINK_BYTES
  || (image.naturalWidth ?? image.width) * (image.naturalHeight ?? image.height) > SHRINK_PIXELS;
const jpegName = (name, prefix = "") => `${prefix}${name.replace(/\.[^.]+$/, "")}.jpg`;

/** `file` ({blob, name}) as it will be sent: shrunk to a JPEG when large, else as it is. `decoded`: the file's
 * loaded <img>, else it is decoded here; a file the browser cannot decode goes as it is (the server may read it,
 * or will say what is wrong with it). */
async function fitted(file, decoded = null) {
  let bitmap = null;
  try {
    const image = decoded ?? (bitmap = await createImageBitmap(file.blob));
    return isLarge(file.blob, image) ? { blob: await toJpeg(image), name: jpegName(file.name) } : file;
  } catch {
    return file;
  } finally {
    bitmap?.close();
  }
}

/** Show small images (icons, 96 px test images) at a comfortable size; large ones are capped by CSS. */
function enlargeSmall(image, target = 220) {
  const longest = Math.max(image.naturalWidth, image.naturalHeight);
  const scale = longest && longest < target ? Math.min(4, target / longest) : 1;
  image.style.width = scale > 1 ? `${Math.round(image.naturalWidth * scale)}px` : "";
}

export function createQueryInput({ onReady, onError }) {
  const dropzone = $("#dropzone");
  const preview = $("#preview");
  const image = $("#preview-img");
  const fallback = $("#preview-fallback");
  const caption = $("#preview-caption");
  const cropHint = $("#crop-hint");
  const cropClear = $("#crop-clear");
  const fileInput = $("#file");
  let current = null; // {blob, name, url, previewOk, extras: [{blob, name}]}

  const cropper = createCropper({
    surface: preview, image, box: $("#crop-box"),
    onChange: (region) => { cropClear.hidden = !region; updateCaption(); },
  });

  function updateCaption() {
    if (!current) return;
    const crop = cropper.region();
    const cropText = crop ? ` · searching the selected ${Math.round(crop.w * 100)}% × ${Math.round(crop.h * 100)}%`
      : "";
    const more = current.extras.length
      ? ` · +${current.extras.length} more example${current.extras.length === 1 ? "" : "s"}: like all of them` : "";
    const shrunk = current.previewOk && isLarge(current.blob, image) ? ` · sent as a JPEG of at most ${MAX_SIDE} px`
      : "";
    caption.textContent = `${current.name} · ${formatBytes(current.blob.size)}${shrunk}${cropText}${more}`;
    caption.hidden = false;
  }

  function setImage(blob, name, extras = []) {
    if (current?.url) URL.revokeObjectURL(current.url);
    current = {
      blob, name: name || "image", url: URL.createObjectURL(blob), previewOk: false,
      extras: extras.map((file) => ({ blob: file, name: file.name || "image" })),
    };
    cropper.clear();
    $("#drop-hint").hidden = true;
    preview.hidden = false;
    image.hidden = false;
    fallback.hidden = true;
    cropHint.hidden = true;
    image.src = current.url;
    updateCaption();
    onReady(current);
  }

  image.addEventListener("load", () => {
    if (!current) return;
    enlargeSmall(image);
    current.previewOk = true;
    cropHint.hidden = false;
    updateCaption();
  });
  image.addEventListener("error", () => {
    if (!current || !image.getAttribute("src")) return;
    current.previewOk = false;
    image.hidden = true;
    fallback.hidden = false;
    cropHint.hidden = true;
  });
  cropClear.addEventListener("click", () => cropper.clear());

  fileInput.addEventListener("change", () => {
    const [file, ...extras] = Array.from(fileInput.files || []);
    if (file) setImage(file, file.name, extras);
  });

  bindDragAndDrop(dropzone, ([file, ...extras]) => setImage(file, file.name, extras));
  bindPaste((file) => setImage(file, file.name && file.name !== "image.png" ? file.name : "pasted-image.png"));
  dropzone.addEventListener("click", (event) => {
    if (!current && event.target.closest("#drop-hint")) fileInput.click();
  });

  const camera = createCamera({
    container: $("#camera"), video: $("#camera-video"), captureButton: $("#capture-btn"),
    cancelButton: $("#camera-cancel"), fileInput: $("#camera-input"),
    onCapture: (blob, name) => setImage(blob, name), onError,
  });
  $("#camera-btn").addEventListener("click", () => camera.open());

  return {
    hasImage: () => Boolean(current),
    /** What to send: the crop when one is drawn, else the image; either shrunk when large. */
    async payload() {
      if (!current) return null;
      const region = cropper.region();
      const extras = await Promise.all(current.extras.map((extra) => fitted(extra)));
      if (region && current.previewOk) {
        return { blob: await toJpeg(image, region), name: jpegName(current.name, "crop-of-"), extras };
      }
      const sent = await fitted({ blob: current.blob, name: current.name }, current.previewOk ? image : null);
      return { ...sent, extras };
    },
  };
}

function bindDragAndDrop(zone, onFile) {
  let depth = 0;
  const isFileDrag = (event) => Array.from(event.dataTransfer?.types || []).includes("Files");
  zone.addEventListener("dragenter", (event) => {
    if (!isFileDrag(event)) return;
    event.preventDefault();
    depth += 1;
    zone.classList.add("is-dragging");
  });
  zone.addEventListener("dragover", (event) => {
    if (!isFileDrag(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  zone.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) zone.classList.remove("is-dragging");
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    depth = 0;
    zone.classList.remove("is-dragging");
    const files = imageFiles(event.dataTransfer?.files);
    if (files.length) onFile(files);
  });
  // A file dropped anywhere else must not navigate away from the dashboard.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
}

function bindPaste(onFile) {
  document.addEventListener("paste", (event) => {
    const target = event.target;
    if (target instanceof HTMLInputElement && target.type === "text") return;
    const file = firstImageFile(event.clipboardData?.files);
    if (!file || !file.type.startsWith("image/")) return;
    event.preventDefault();
    onFile(file);
  });
}
