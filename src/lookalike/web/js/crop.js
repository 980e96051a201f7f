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

/** The `region` (fractions) of a loaded <img> as a JPEG Blob. */
export function cropToBlob(image, region) {
  const sx = Math.round(region.x * image.naturalWidth);
  const sy = Math.round(region.y * image.naturalHeight);
  const sw = Math.max(1, Math.round(region.w * image.naturalWidth));
  const sh = Math.max(1, Math.round(region.h * image.naturalHeight));
  const canvas = document.createElement("canvas");
  canvas.width = sw;
  canvas.height = sh;
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff";
  context.fillRect(0, 0, sw, sh);
  context.drawImage(image, sx, sy, sw, sh, 0, 0, sw, sh);
  return new Promise((resolve, reject) => {
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("could not crop the image"))),
      "image/jpeg", 0.92);
  });
}
