"""What the benchmarks share: realistic catalog JPEGs, a real `lookalike serve` process and its CPU use, percentiles,
the machine."""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from lookalike.config import Settings
from lookalike.data.fashion_mnist import CATEGORIES, category_slug, load_split, missing_files

CATALOG_SIZE = (600, 800)  # width, height of a typical product photo


def machine() -> str:
    """The CPU model (sessions run on different hosts), cores, memory and Python version."""
    cores = os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    python = sys.version.split()[0]
    return f"{cpu_model()}, {cores} cores, {memory:.0f} GiB RAM, Python {python}"


def write_results(out: Path, **figures: object) -> None:
    """``figures`` as JSON at ``out``, with the machine, the date and the command line that measured them."""
    result = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv), **figures}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 and mean of latencies in ms."""
    array = np.asarray(values, np.float64)
    if len(array) == 0:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan"), "mean_ms": float("nan")}
    p50, p95, p99 = np.percentile(array, [50, 95, 99])
    return {"p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2), "p99_ms": round(float(p99), 2),
            "mean_ms": round(float(array.mean()), 2)}


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its live descendants (Linux ``/proc``)."""
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        process = int(stat.parent.name)
        parents[process] = int(fields[1])
        used[process] = (int(fields[11]) + int(fields[12])) / ticks
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent and child not in tree]
        tree.update(children)
        frontier += children
    return sum(used.get(process, 0.0) for process in tree)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def garment_images(n: int, split: str = "test", seed: int = 0) -> Iterator[tuple[str, Image.Image]]:
    """``n`` (category, grayscale garment) pairs from Fashion-MNIST, or drawn shapes when it is not installed."""
    rng = random.Random(seed)
    data_dir = Settings().fashion_mnist_dir
    if not missing_files(data_dir):
        images, labels = load_split(data_dir, split, verify=False)  # type: ignore[arg-type]
        for index in rng.sample(range(len(images)), min(n, len(images))):
            yield category_slug(CATEGORIES[int(labels[index])]), Image.fromarray(images[index])
        return
    for i in range(n):
        image = Image.new("L", (28, 28), 0)
        kind = i % 3
        for y in range(28):
            for x in range(28):
                on = (kind == 0 and (x // 4) % 2) or (kind == 1 and (x - 14) ** 2 + (y - 14) ** 2 < 100) or (
                    kind == 2 and ((x // 5) + (y // 5)) % 2)
                if on:
                    image.putpixel((x, y), 200 + rng.randint(0, 55))
        yield ["stripes", "circles", "checks"][kind], image


def catalog_jpeg(garment: Image.Image, rng: random.Random, size: tuple[int, int] = CATALOG_SIZE) -> bytes:
    """A product-photo-like JPEG: the garment coloured, enlarged, on a lightly textured studio background."""
    width, height = size
    colour = tuple(rng.randint(0, 200) for _ in range(3))
    background = tuple(rng.randint(215, 250) for _ in range(3))
    side = int(width * rng.uniform(0.75, 0.95))
    picture = ImageOps.colorize(garment.convert("L"), black=background, white=colour)  # type: ignore[arg-type]
    picture = picture.resize((side, side), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(1.2))
    canvas = Image.new("RGB", size, background)  # type: ignore[arg-type]
    noise = np.random.default_rng(rng.randint(0, 2**31)).normal(0, 4, (height, width, 1))
    canvas = Image.fromarray(np.clip(np.asarray(canvas, np.float32) + noise, 0, 255).astype(np.uint8))
    canvas.paste(picture, ((width - side) // 2, (height - side) // 2))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_catalog_jpegs(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` catalog JPEGs under ``root/<category>/``; reused when already there."""
    done = root / ".complete"
    if done.is_file() and done.read_text() == f"{n} {seed}":
        return root
    rng = random.Random(seed)
    for i, (category, garment) in enumerate(garment_images(n, "test", seed)):
        path = root / category / f"{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(catalog_jpeg(garment, rng))
    done.write_text(f"{n} {seed}")
    return root


def query_jpegs(n: int, seed: int = 1) -> list[bytes]:
    """Shopper-style query uploads: catalog-like JPEGs of garments from the test split."""
    rng = random.Random(seed)
    return [catalog_jpeg(g, rng, (480, 640)) for _, g in garment_images(n, "test", seed)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVE = ("-m", "lookalike.cli", "serve")
FLOOR = (str(Path(__file__).with_name("floor_server.py")),)  # decode and model only: see floor_server.py


@contextlib.contextmanager
def server_process(home: Path, log_path: Path | None = None, program: Sequence[str] = SERVE, **env: str
                   ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real `lookalike serve` over ``home`` (``env`` gives settings: ``api_token="..."`` is
    ``LOOKALIKE_API_TOKEN``; ``program``: another server's arguments to Python, e.g. ``FLOOR``, taking ``--port``);
    yields its base URL and its process. The server's log goes to a file, not an unread pipe, so a chatty server never
    blocks on a full pipe."""
    port = free_port()
    environment = {**os.environ, "LOOKALIKE_HOME": str(home), **{f"LOOKALIKE_{k.upper()}": v for k, v in env.items()}}
    with (log_path.open("w+b") if log_path else tempfile.TemporaryFile()) as log:
        server = subprocess.Popen([sys.executable, *program, "--port", str(port)],
                                  env=environment, stdout=subprocess.DEVNULL, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 600
            while True:
                if server.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"server exited: {log.read().decode(errors='replace')[-2000:]}")
                try:
                    urllib.request.urlopen(f"{base}/api/health", timeout=2)
                    break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.3)
            yield base, server
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()


def multipart(data: bytes, fields: dict[str, str], filename: str = "query.jpg") -> tuple[bytes, str]:
    """A multipart/form-data body with one file part and text fields; returns (body, content type)."""
    boundary = "lookalikebenchmarkboundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 "Content-Type: image/jpeg\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
