"""Fashion-MNIST: locate, verify, parse (idx format) and import as a folder of PNGs plus a manifest.

The four idx files are looked for in a data folder (Debian's ``dataset-fashion-mnist`` installs them in
``/usr/share/datasets/fashion-mnist``), gzipped or plain. They are verified by the SHA-256 of their
*decompressed* content, so the official ``.gz`` files, Debian's re-compressed ones and plain copies all
pass. :func:`download` fetches the official files (only when asked, with ``pooch``) and checks their published
MD5.

Longer than most modules (about 440 lines) because its four steps share one table of files and checksums and one
error type, and each is small; split it only if another dataset joins it.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import logging
import math
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pooch
from PIL import Image

from lookalike.errors import DatasetError
from lookalike.io.files import write_atomically

logger = logging.getLogger(__name__)

Split = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")

CATEGORIES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

IMAGE_SIZE = 28
BASE_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("path", "category", "split", "label", "index")


@dataclass(frozen=True)
class IdxFile:
    """One of the four Fashion-MNIST idx files and its checksums.

    ``md5`` is the MD5 zalando publishes for the official ``.gz``; ``content_sha256`` is the SHA-256 of the
    decompressed idx bytes, the same for the official files, Debian's re-compressed ones and plain copies.
    """

    split: Split
    kind: Literal["images", "labels"]
    name: str
    count: int
    md5: str
    content_sha256: str

    @property
    def plain_name(self) -> str:
        """The file name without ``.gz``."""
        return self.name.removesuffix(".gz")


FILES: tuple[IdxFile, ...] = (
    IdxFile(
        split="train",
        kind="images",
        name="train-images-idx3-ubyte.gz",
        count=60_000,
        md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        content_sha256="c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    IdxFile(
        split="train",
        kind="labels",
        name="train-labels-idx1-ubyte.gz",
        count=60_000,
        md5="25c81989df183df01b3e8a0aad5dffbe",
        content_sha256="bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    IdxFile(
        split="test",
        kind="images",
        name="t10k-images-idx3-ubyte.gz",
        count=10_000,
        md5="bef4ecab320f06d8554ea6380940ec79",
        content_sha256="5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    IdxFile(
        split="test",
        kind="labels",
        name="t10k-labels-idx1-ubyte.gz",
        count=10_000,
        md5="bb300cfdad3c16e7a12a480ee83cd310",
        content_sha256="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
)

# idx type codes -> numpy dtypes (big-endian on disk).
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def category_slug(name: str) -> str:
    """Folder-safe slug of a category name: ``"T-shirt/top"`` -> ``"t-shirt-top"``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _file_for(split: str, kind: str) -> IdxFile:
    for f in FILES:
        if f.split == split and f.kind == kind:
            return f
    raise ValueError(f"no Fashion-MNIST file for {split}/{kind}")


# --------------------------------------------------------------------------------------------- idx


def _read_bytes(path: Path) -> bytes:
    """The idx bytes of ``path``, decompressing when it is gzipped (detected by content, not name)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DatasetError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path} is not a valid gzip file: {exc}") from exc


def parse_idx(data: bytes, *, source: str = "idx data") -> np.ndarray:
    """Parse idx-format bytes (magic, big-endian dimensions, data) into a native-endian array."""
    if len(data) < 4:
        raise DatasetError(f"{source}: too short for an idx header ({len(data)} bytes)")
    zero, type_code, ndim = struct.unpack_from(">HBB", data, 0)
    if zero != 0:
        raise DatasetError(f"{source}: bad idx magic number 0x{data[:4].hex()}")
    if type_code not in _IDX_DTYPES:
        raise DatasetError(f"{source}: unknown idx data type 0x{type_code:02x}")
    if ndim == 0:
        raise DatasetError(f"{source}: idx file declares zero dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{source}: truncated idx header ({len(data)} of {header} bytes)")
    dims = struct.unpack_from(f">{ndim}I", data, 4)
    dtype = _IDX_DTYPES[type_code]
    expected = math.prod(dims) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        raise DatasetError(f"{source}: idx dimensions {dims} need {expected} bytes of data, found {found}")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def load_idx(path: Path) -> np.ndarray:
    """Read an idx file, gzipped or plain; :class:`DatasetError` if it is missing or malformed."""
    return parse_idx(_read_bytes(Path(path)), source=str(path))


# ---------------------------------------------------------------------------------------- locating


def _locate(data_dir: Path, f: IdxFile) -> Path | None:
    for name in (f.name, f.plain_name):
        candidate = data_dir / name
        if candidate.is_file():
            return candidate
    return None


def missing_files(data_dir: Path) -> list[str]:
    """Names of the idx files absent (neither ``.gz`` nor plain) from ``data_dir``."""
    return [f.name for f in FILES if _locate(Path(data_dir), f) is None]


# ---------------------------------------------------------------------------------------- download


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    """Keep pooch's own INFO messages (it logs to stderr by itself) out of the output; this module logs them."""
    pooch_logger = pooch.get_logger()
    level = pooch_logger.level
    pooch_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        pooch_logger.setLevel(level)


def download(
    dest: Path,
    base_url: str = BASE_URL,
    *,
    checksums: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download the four official ``.gz`` files into ``dest`` and verify their MD5 (with ``pooch``).

    ``checksums`` maps file name to expected MD5 (default: the published ones). Files already present
    with the right MD5 are kept. Each file is written to a temporary name and renamed once verified;
    on a mismatch or network error it is removed and :class:`DatasetError` is raised.
    """
    dest = Path(dest).expanduser()
    expected_md5 = dict(checksums) if checksums is not None else {f.name: f.md5 for f in FILES}
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"Cannot create download folder {dest}: {exc.strerror or exc}") from exc
    base = base_url if base_url.endswith("/") else base_url + "/"
    downloader = pooch.HTTPDownloader(timeout=timeout)
    for f in FILES:
        expected = expected_md5.get(f.name)
        if expected is None:
            raise DatasetError(f"No expected checksum given for {f.name}")
        target = dest / f.name
        if target.is_file() and pooch.file_hash(str(target), alg="md5") == expected.lower():
            logger.info("%s already present and verified", target)
            continue
        url = base + f.name
        logger.info("Downloading %s", url)
        try:
            with _quiet_pooch():
                pooch.retrieve(url, f"md5:{expected.lower()}", fname=f.name, path=dest, downloader=downloader)
        except OSError as exc:  # requests' errors are OSErrors too (HTTP status, connection, timeout)
            raise DatasetError(f"Download of {url} failed: {exc}") from exc
        except ValueError as exc:  # pooch's hash mismatch
            raise DatasetError(f"Checksum mismatch for {f.name} downloaded from {url}: {exc}") from exc
    return dest


_fetch = download  # find_data_dir's ``download`` flag shadows the function name


def find_data_dir(
    explicit: Path | None,
    default: Path,
    *,
    download: bool = False,
    download_dir: Path | None = None,
) -> Path:
    """The folder holding the four idx files: ``explicit`` if given, else ``default``.

    When the files are missing there and ``download`` is true, they are fetched into ``download_dir``
    (default: the folder searched) and that folder is returned; otherwise :class:`DatasetError`.
    """
    searched = Path(explicit if explicit is not None else default).expanduser()
    missing = missing_files(searched)
    if not missing:
        return searched
    if download:
        dest = Path(download_dir).expanduser() if download_dir is not None else searched
        if dest != searched and not missing_files(dest):
            return dest
        return _fetch(dest)
    raise DatasetError(
        f"Fashion-MNIST files not found in {searched} (missing: {', '.join(missing)}). "
        "Install the Debian package dataset-fashion-mnist, point to a folder holding the idx files, "
        "or allow downloading them."
    )


# ------------------------------------------------------------------------------------------ splits


def _load_verified(data_dir: Path, f: IdxFile, verify: bool) -> np.ndarray:
    path = _locate(data_dir, f)
    if path is None:
        raise DatasetError(f"Fashion-MNIST file {f.name} (or {f.plain_name}) not found in {data_dir}")
    data = _read_bytes(path)
    if verify:
        actual = hashlib.sha256(data).hexdigest()
        if actual != f.content_sha256:
            raise DatasetError(
                f"Checksum mismatch for {path}: content SHA-256 {actual}, expected {f.content_sha256}"
            )
    return parse_idx(data, source=str(path))


def load_split(data_dir: Path, split: Split, *, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 (N, 28, 28)`` and labels ``uint8 (N,)`` of one split, checked for consistency.

    ``verify`` checks the content checksums (turn it off only for generated test fixtures).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    data_dir = Path(data_dir).expanduser()
    images = _load_verified(data_dir, _file_for(split, "images"), verify)
    labels = _load_verified(data_dir, _file_for(split, "labels"), verify)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DatasetError(
            f"{split} images: expected uint8 (N, {IMAGE_SIZE}, {IMAGE_SIZE}), "
            f"got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(f"{split} labels: expected uint8 (N,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DatasetError(f"{split}: {len(images)} images but {len(labels)} labels")
    if labels.size and int(labels.max()) >= len(CATEGORIES):
        raise DatasetError(f"{split} labels: value {int(labels.max())} outside 0..{len(CATEGORIES) - 1}")
    return images, labels


# ------------------------------------------------------------------------------------------ import


def _tmp_name(name: str) -> str:
    return f".{name}.{os.getpid()}.tmp"


def _scan_done(folder: Path) -> set[str]:
    """Names of finished (non-empty) PNGs in ``folder``; removes temp files left by interrupted runs."""
    done: set[str] = set()
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
            elif entry.is_file() and entry.stat().st_size > 0:
                done.add(entry.name)
    return done


def _write_png(image: np.ndarray, path: Path) -> None:
    """Write to a temporary name, then rename: an interrupted import leaves no torn PNG. Not fsynced, unlike
    ``io.files.atomic_write``: 70,000 rebuildable files would pay an fsync each."""
    tmp = path.with_name(_tmp_name(path.name))
    try:
        Image.fromarray(image).save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _write_chunk(jobs: Sequence[tuple[np.ndarray, Path]]) -> int:
    for image, path in jobs:
        _write_png(image, path)
    return len(jobs)


def _write_text_atomic(path: Path, text: str) -> None:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    write_atomically(path, text)


def import_fashion_mnist(
    out_dir: Path,
    data_dir: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    verify: bool = True,
    workers: int = 2,
    chunk_size: int = 500,
) -> Path:
    """Write every Fashion-MNIST image as a PNG under ``out_dir`` plus ``out_dir/manifest.csv``.

    Layout: ``images/{split}/{category_slug}/{split}-{index:05d}.png``; manifest columns ``path``
    (relative to ``out_dir``), ``category``, ``split``, ``label``, ``index``. Source files are verified
    first (``verify``). Resumable and idempotent: existing non-empty PNGs are kept, each PNG and the
    manifest (written last) go to a temporary name first. ``progress(done, total)`` is called as
    images are done. Returns the manifest path.
    """
    out_dir = Path(out_dir).expanduser()
    data_dir = Path(data_dir).expanduser()
    splits = {split: load_split(data_dir, split, verify=verify) for split in SPLITS}
    total = sum(len(labels) for _, labels in splits.values())

    slugs = [category_slug(c) for c in CATEGORIES]
    done_names: dict[Path, set[str]] = {}
    for split in SPLITS:
        for slug in slugs:
            folder = out_dir / "images" / split / slug
            folder.mkdir(parents=True, exist_ok=True)
            done_names[folder] = _scan_done(folder)

    rows: list[tuple[str, str, str, int, int]] = []
    jobs: list[tuple[np.ndarray, Path]] = []
    for split, (images, labels) in splits.items():
        for index, label in enumerate(labels.tolist()):
            name = f"{split}-{index:05d}.png"
            rel = f"images/{split}/{slugs[label]}/{name}"
            rows.append((rel, CATEGORIES[label], split, label, index))
            folder = out_dir / "images" / split / slugs[label]
            if name not in done_names[folder]:
                jobs.append((images[index], folder / name))

    done = total - len(jobs)
    logger.info("Fashion-MNIST import: %d images, %d already present, writing %d", total, done, len(jobs))
    if progress is not None:
        progress(done, total)
    if jobs:
        chunks = [jobs[i : i + chunk_size] for i in range(0, len(jobs), chunk_size)]
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="fmnist-png") as pool:
            pending: set[Future[int]] = {pool.submit(_write_chunk, chunk) for chunk in chunks}
            try:
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for future in finished:
                        done += future.result()
                        if progress is not None:
                            progress(done, total)
            finally:
                for future in pending:
                    future.cancel()

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    writer.writerows(rows)
    manifest = out_dir / MANIFEST_NAME
    _write_text_atomic(manifest, buffer.getvalue())
    logger.info("Fashion-MNIST manifest written to %s", manifest)
    return manifest
