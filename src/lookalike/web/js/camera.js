// Taking a photo: the phone's own camera (<input capture>) on touch devices, a live getUserMedia preview
// with a "Take photo" button on desktops that have a camera.

const prefersNativeCapture = () => window.matchMedia?.("(pointer: coarse)").matches ?? false;
const canStream = () => Boolean(navigator.mediaDevices?.getUserMedia) && window.isSecureContext;

export function createCamera({ container, video, captureButton, cancelButton, fileInput, onCapture, onError }) {
  let stream = null;

  function stop() {
    stream?.getTracks().forEach((track) => track.stop());
    stream = null;
    video.srcObject = null;
    container.hidden = true;
  }

  async function open() {
    if (prefersNativeCapture() || !canStream()) {
      fileInput.click();
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    } catch (error) {
      onError(error.name === "NotAllowedError"
        ? "Camera access was refused. Allow it in the browser, or choose a file instead."
        : "No camera is available here. Choose a file instead.");
      return;
    }
    video.srcObject = stream;
    container.hidden = false;
    await video.play().catch(() => {});
    captureButton.focus();
  }

  async function capture() {
    if (!stream) return;
    if (!video.videoWidth) {
      await new Promise((resolve) => video.addEventListener("loadeddata", resolve, { once: true }));
    }
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob((blob) => {
      stop();
      if (blob) onCapture(blob, `camera-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-")}.jpg`);
    }, "image/jpeg", 0.92);
  }

  captureButton.addEventListener("click", capture);
  cancelButton.addEventListener("click", stop);
  container.addEventListener("keydown", (event) => { if (event.key === "Escape") stop(); });
  fileInput.addEventListener("change", () => {
    const file = fileInput.files?.[0];
    if (file) onCapture(file, file.name || "camera.jpg");
    fileInput.value = "";
  });
  return { open, stop, isOpen: () => Boolean(stream) };
}
