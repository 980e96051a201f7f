// An optional crop box: drag a rectangle on the preview image; the region is kept as fractions of the image.

const MIN_FRACTION = 0.03;
const clamp = (value) => Math.min(1, Math.max(0, value));

export function createCropper({ surface, image, box, onChange }) {
  let region = null;
  let start = null;

  const pointAt = (event) => {
    const rect = image.getBoundingClientRect();
    return { x: clamp((event.clientX - rect.left) / rect.width), y: clamp((event.clientY - rect.top) / rect.height) };
  };

  const draw = () => {
    box.hidden = !region;
    if (!region) return;
    Object.assign(box.style, {
      left: `${region.x * 100}%`, top: `${region.y * 100}%`,
      width: `${region.w * 100}%`, height: `${region.h * 100}%`,
    });
  };

  const spanning = (a, b) => ({
    x: Math.min(a.x, b.x), y: Math.min(a.y, b.y), w: Math.abs(a.x - b.x), h: Math.abs(a.y - b.y),
  });

  function onDown(event) {
    if (image.hidden || !image.naturalWidth || event.button > 0) return;
    event.preventDefault();
    start = pointAt(event);
    surface.setPointerCapture?.(event.pointerId);
    surface.classList.add("is-cropping");
  }

  function onMove(event) {
    if (!start) return;
    region = spanning(start, pointAt(event));
    draw();
  }

  function onUp(event) {
    if (!start) return;
    const end = pointAt(event);
    region = spanning(start, end);
    start = null;
    surface.classList.remove("is-cropping");
    if (region.w < MIN_FRACTION || region.h < MIN_FRACTION) region = null;
    draw();
    onChange(region);
  }

  surface.addEventListener("pointerdown", onDown);
  surface.addEventListener("pointermove", onMove);
  surface.addEventListener("pointerup", onUp);
  surface.addEventListener("pointercancel", onUp);

  return {
    region: () => region,
    clear() {
      region = null;
      start = null;
      draw();
      onChange(null);
    },
  };
}

export const MAX_SIDE = 2048;
const WHOLE = { x: 0, y: 0, w: 1, h: 1 };

/** The `region` (fractions; default all) of a decoded image (a loaded <img> or an ImageBitmap) as a JPEG Blob,
 * scaled down to at most MAX_SIDE px on its long side, as shops do: the server need not see 48 megapixels. */
export function toJpeg(image, region = WHOLE) {
  const width = image.naturalWidth ?? image.width;
  const height = image.naturalHeight ?? image.height;
  const sx = Math.round(region.x * width);
  const sy = Math.round(region.y * height);
  const sw = Math.max(1, Math.round(region.w * width));
  const sh = Math.max(1, Math.round(region.h * height));
  const scale = Math.min(1, MAX_SIDE / Math.max(sw, sh));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(sw * scale));
  canvas.height = Math.max(1, Math.round(sh * scale));
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff";
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.imageSmoothingQuality = "high";
  context.drawImage(image, sx, sy, sw, sh, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve, reject) => {
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("could not encode the image"))),
      "image/jpeg", 0.9);
  });
}
