"""Fashion-MNIST importer tests on tiny generated idx files (never the real data, never the network)."""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import http.server
import os
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.data import fashion_mnist as fm
from lookalike.data.sources import open_source, read_manifest
from lookalike.errors import DatasetError

from imagegen import idx_bytes, make_dataset, write_idx  # noqa: E402,F401


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, dict]:
    data_dir = tmp_path / "raw"
    return data_dir, make_dataset(data_dir)


# ---------------------------------------------------------------------------------------------- idx


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([1, -2, 300_000], dtype=np.int32),
        np.array([[1.5, -2.25]], dtype=np.float32),
        np.array([-1, 2], dtype=np.int16),
    ],
)
def test_idx_round_trip(tmp_path: Path, array: np.ndarray, gz: bool) -> None:
    path = write_idx(tmp_path / "x.idx", array, gz=gz)
    loaded = fm.load_idx(path)
    assert loaded.dtype == array.dtype
    assert loaded.dtype.isnative
    np.testing.assert_array_equal(loaded, array)
    loaded[...] = 0  # writable copy


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "magic"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "data type"),
        (b"\x00\x00\x08\x00", "zero dimensions"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 1), "truncated idx header"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 4) + b"\x00\x01", "need 4 bytes"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 1) + b"\x00\x01", "need 1 bytes"),
    ],
)
def test_malformed_idx_raises(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(data)
    with pytest.raises(DatasetError, match=message):
        fm.load_idx(path)


def test_corrupt_gzip_raises(tmp_path: Path) -> None:
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((3, 28, 28), np.uint8)))[:40])
    with pytest.raises(DatasetError, match="gzip"):
        fm.load_idx(path)


def test_missing_idx_file_raises(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="Cannot read"):
        fm.load_idx(tmp_path / "nope.gz")


# ------------------------------------------------------------------------------------------- splits


def test_constants() -> None:
    assert fm.CATEGORIES[0] == "T-shirt/top" and fm.CATEGORIES[9] == "Ankle boot"
    assert len(fm.CATEGORIES) == 10
    assert [fm.category_slug(c) for c in fm.CATEGORIES][:2] == ["t-shirt-top", "trouser"]
    assert fm.category_slug("Ankle boot") == "ankle-boot"
    assert {f.name for f in fm.FILES} == {
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    }
    assert all(len(f.md5) == 32 and len(f.content_sha256) == 64 for f in fm.FILES)


@pytest.mark.parametrize("gz", [True, False])
def test_load_split(tmp_path: Path, gz: bool) -> None:
    arrays = make_dataset(tmp_path, gz=gz)
    for split in ("train", "test"):
        images, labels = fm.load_split(tmp_path, split, verify=False)
        assert images.dtype == np.uint8 and images.shape == arrays[split][0].shape
        assert labels.dtype == np.uint8 and labels.shape == (len(images),)
        np.testing.assert_array_equal(images, arrays[split][0])
        np.testing.assert_array_equal(labels, arrays[split][1])


def test_load_split_verifies_checksum_and_names_file(dataset: tuple[Path, dict]) -> None:
    data_dir, _ = dataset
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz"):
        fm.load_split(data_dir, "train")


def test_load_split_rejects_bad_split(dataset: tuple[Path, dict]) -> None:
    with pytest.raises(ValueError):
        fm.load_split(dataset[0], "valid", verify=False)  # type: ignore[arg-type]


def test_load_split_inconsistent_counts(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(DatasetError, match="6 images but 5 labels"):
        fm.load_split(tmp_path, "test", verify=False)


def test_load_split_label_out_of_range(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(6, 10, np.uint8))
    with pytest.raises(DatasetError, match="outside"):
        fm.load_split(tmp_path, "test", verify=False)


def test_load_split_wrong_image_shape(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((6, 27, 28), np.uint8))
    with pytest.raises(DatasetError, match="test images"):
        fm.load_split(tmp_path, "test", verify=False)


def test_load_split_missing_file(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte"):
        fm.load_split(tmp_path, "test", verify=False)


# --------------------------------------------------------------------------------------- find dir


def test_find_data_dir(tmp_path: Path, dataset: tuple[Path, dict]) -> None:
    data_dir, _ = dataset
    empty = tmp_path / "empty"
    empty.mkdir()
    assert fm.find_data_dir(data_dir, empty) == data_dir
    assert fm.find_data_dir(None, data_dir) == data_dir
    with pytest.raises(DatasetError, match="not found"):
        fm.find_data_dir(empty, data_dir)  # an explicit folder never falls back
    with pytest.raises(DatasetError, match="dataset-fashion-mnist"):
        fm.find_data_dir(None, empty)


def test_find_data_dir_plain_files(tmp_path: Path) -> None:
    make_dataset(tmp_path, gz=False)
    assert fm.find_data_dir(None, tmp_path) == tmp_path
    assert fm.missing_files(tmp_path) == []


def test_find_data_dir_downloads_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []

    def fake_fetch(dest: Path) -> Path:
        calls.append(dest)
        make_dataset(dest)
        return dest

    monkeypatch.setattr(fm, "_fetch", fake_fetch)
    missing, cache = tmp_path / "missing", tmp_path / "cache"
    with pytest.raises(DatasetError):
        fm.find_data_dir(None, missing)
    assert calls == []
    assert fm.find_data_dir(None, missing, download=True, download_dir=cache) == cache
    assert calls == [cache]
    # Already downloaded: no second fetch.
    assert fm.find_data_dir(None, missing, download=True, download_dir=cache) == cache
    assert calls == [cache]


# ---------------------------------------------------------------------------------------- download


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        super().do_GET()


@pytest.fixture
def file_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path, list[str]]]:
    """Serve ``tmp_path/served`` on 127.0.0.1; yield (base URL, folder, request log)."""
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    served = tmp_path / "served"
    served.mkdir()

    class Handler(_QuietHandler):
        requests: list[str] = []

    handler = Handler
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=served))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", served, handler.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _md5s(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.md5((folder / f.name).read_bytes()).hexdigest() for f in fm.FILES}


def test_download_ok(tmp_path: Path, file_server: tuple[str, Path, list[str]]) -> None:
    url, served, requests = file_server
    make_dataset(served)
    checksums = _md5s(served)
    dest = tmp_path / "dest"
    assert fm.download(dest, url, checksums=checksums) == dest
    assert sorted(p.name for p in dest.iterdir()) == sorted(f.name for f in fm.FILES)
    for f in fm.FILES:
        assert (dest / f.name).read_bytes() == (served / f.name).read_bytes()
    images, _ = fm.load_split(dest, "train", verify=False)
    assert images.shape == (12, 28, 28)
    assert len(requests) == 4
    # Present and verified: nothing fetched again.
    fm.download(dest, url.rstrip("/"), checksums=checksums)
    assert len(requests) == 4


def test_download_checksum_mismatch(tmp_path: Path, file_server: tuple[str, Path, list[str]]) -> None:
    url, served, _ = file_server
    make_dataset(served)
    checksums = _md5s(served)
    checksums["train-labels-idx1-ubyte.gz"] = "0" * 32
    dest = tmp_path / "dest"
    with pytest.raises(DatasetError, match="Checksum mismatch for train-labels-idx1-ubyte.gz"):
        fm.download(dest, url, checksums=checksums)
    names = sorted(p.name for p in dest.iterdir())
    assert names == ["train-images-idx3-ubyte.gz"]  # verified first file kept, bad one and temp removed


def test_download_http_error(tmp_path: Path, file_server: tuple[str, Path, list[str]]) -> None:
    url, _, _ = file_server  # serves nothing: 404
    dest = tmp_path / "dest"
    with pytest.raises(DatasetError, match="failed"):
        fm.download(dest, url, checksums={f.name: "0" * 32 for f in fm.FILES})
    assert list(dest.iterdir()) == []


def test_download_default_checksums_are_published_md5() -> None:
    published = {f.name: f.md5 for f in fm.FILES}
    assert published["train-images-idx3-ubyte.gz"] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    assert published["t10k-labels-idx1-ubyte.gz"] == "bb300cfdad3c16e7a12a480ee83cd310"
    assert fm.BASE_URL.startswith("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com")


# ------------------------------------------------------------------------------------------ import


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_import_writes_pngs_and_manifest(tmp_path: Path, dataset: tuple[Path, dict]) -> None:
    data_dir, arrays = dataset
    out = tmp_path / "out"
    calls: list[tuple[int, int]] = []
    manifest = fm.import_fashion_mnist(
        out, data_dir, verify=False, progress=lambda d, t: calls.append((d, t)), chunk_size=5
    )
    assert manifest == out / "manifest.csv"
    rows = _read_csv(manifest)
    assert list(rows[0]) == ["path", "category", "split", "label", "index"]
    assert len(rows) == 18
    assert calls[0] == (0, 18) and calls[-1] == (18, 18)

    first = rows[0]
    assert first == {
        "path": "images/train/t-shirt-top/train-00000.png",
        "category": "T-shirt/top",
        "split": "train",
        "label": "0",
        "index": "0",
    }
    assert rows[12]["path"] == "images/test/t-shirt-top/test-00000.png"
    assert rows[9]["path"] == "images/train/ankle-boot/train-00009.png"
    for row in rows:
        images, labels = arrays[row["split"]]
        index = int(row["index"])
        assert int(row["label"]) == labels[index]
        assert row["category"] == fm.CATEGORIES[labels[index]]
        with Image.open(out / row["path"]) as img:
            assert img.mode == "L" and img.size == (28, 28)
            np.testing.assert_array_equal(np.asarray(img), images[index])
    pngs = sorted(p for p in out.rglob("*") if p.is_file() and p.suffix == ".png")
    assert len(pngs) == 18
    assert not [p for p in out.rglob(".*")]  # no temp files left


def test_import_is_idempotent_and_resumable(tmp_path: Path, dataset: tuple[Path, dict]) -> None:
    data_dir, arrays = dataset
    out = tmp_path / "out"
    manifest = fm.import_fashion_mnist(out, data_dir, verify=False)
    pngs = sorted(out.rglob("*.png"))
    old = 1_000_000_000
    for p in [*pngs, manifest]:
        os.utime(p, ns=(old, old))

    fm.import_fashion_mnist(out, data_dir, verify=False)
    assert all(p.stat().st_mtime_ns == old for p in pngs)
    assert manifest.stat().st_mtime_ns == old  # identical manifest is not rewritten

    # Simulate an interrupted run: one PNG missing, one empty, one stray temp file.
    missing = out / "images/train/trouser/train-00001.png"
    empty = out / "images/test/dress/test-00003.png"
    missing.unlink()
    empty.write_bytes(b"")
    stray = out / "images/train/coat/.train-00004.png.999.tmp"
    stray.write_bytes(b"half")
    calls: list[tuple[int, int]] = []
    fm.import_fashion_mnist(out, data_dir, verify=False, progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (16, 18) and calls[-1] == (18, 18)
    assert not stray.exists()
    with Image.open(missing) as img:
        np.testing.assert_array_equal(np.asarray(img), arrays["train"][0][1])
    assert empty.stat().st_size > 0
    rewritten = {missing, empty}
    assert all(p.stat().st_mtime_ns == old for p in pngs if p not in rewritten)


def test_import_verifies_before_writing(tmp_path: Path, dataset: tuple[Path, dict]) -> None:
    data_dir, _ = dataset
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match="Checksum mismatch.*train-images-idx3-ubyte.gz"):
        fm.import_fashion_mnist(out, data_dir)
    assert not out.exists()


def test_import_manifest_readable_as_source(tmp_path: Path, dataset: tuple[Path, dict]) -> None:
    data_dir, _ = dataset
    manifest = fm.import_fashion_mnist(tmp_path / "out", data_dir, verify=False)
    entries = read_manifest(manifest)
    assert len(entries) == 18
    assert all(e.path.is_absolute() and e.path.is_file() for e in entries)
    test_entries = open_source(manifest, split="test")
    assert len(test_entries) == 6
    assert [e.category for e in test_entries] == [fm.CATEGORIES[i % 10] for i in range(6)]
    assert test_entries[0].item_id is None
    assert test_entries[1].metadata == {"split": "test", "label": 1, "index": 1}
    assert len(open_source(manifest, split="train")) == 12
