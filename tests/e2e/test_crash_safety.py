"""Crash safety: ingests SIGKILLed at random points and restarted keep every image exactly once with the catalog
database and the vector index in agreement; an index save SIGKILLed at random moments leaves the previous index
loadable; corrupt or truncated index files are refused with a clear message by the library, the CLI and `serve`."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from lookalike.bootstrap import open_engine
from lookalike.config import Settings
from lookalike.errors import IndexCorruptError
from lookalike.index.base import IndexManifest
from lookalike.index.faiss_store import FaissStore

from apiserver import ingested
from imagegen import write_catalog, write_tiny_backbone
from killing import kill_repeatedly


def assert_catalog_and_index_agree(settings: Settings, paths: list[Path] | None = None) -> int:
    """Open the engine as a restart would; DB ids == index ids, no path twice (and exactly ``paths`` if given)."""
    engine = open_engine(settings)
    try:
        records = list(engine.catalog.iter_items())
        stored = sorted(r.path for r in records)
        assert len(stored) == len(set(stored)), "an image is in the catalog twice"
        if paths is not None:
            assert stored == sorted(str(p.resolve()) for p in paths)  # every image, exactly once
        assert sorted(engine.store.ids().tolist()) == sorted(r.id for r in records)
        assert len(engine.store) == len(records)
        return len(records)
    finally:
        engine.close()


def items_committed(home: Path):  # noqa: ANN201
    """A function counting the catalog's rows, read as another process would (0 before the database exists)."""

    def count() -> int:
        try:
            with closing(sqlite3.connect(f"file:{home / 'catalog.db'}?mode=ro", uri=True, timeout=5)) as db:
                return int(db.execute("SELECT count(*) FROM items").fetchone()[0])
        except sqlite3.OperationalError:  # not created yet
            return 0

    return count


def test_sigkilled_ingest_of_5000_images_resumes_with_every_image_exactly_once(tmp_path: Path) -> None:
    """The issue's bar: 5,001 images, killed at random points several times. A tiny ONNX backbone keeps it fast;
    everything else (decode, features, DB, index, checkpoints, reconcile) is the real pipeline."""
    catalog = tmp_path / "catalog"
    paths = write_catalog(catalog, per_category=1667)
    backbone = write_tiny_backbone(tmp_path / "model")
    home = tmp_path / "home"
    env = {**os.environ, "LOOKALIKE_HOME": str(home), "LOOKALIKE_BACKBONE": backbone, "LOOKALIKE_BATCH_SIZE": "32",
           "LOOKALIKE_CHECKPOINT_EVERY": "160"}
    settings = Settings(home=home, backbone=backbone, _env_file=None)  # type: ignore[call-arg]
    command = [sys.executable, "-m", "lookalike.cli", "ingest", str(catalog)]
    progress: list[int] = []
    kills = kill_repeatedly(command, env, random.Random(11), runs=6, window=(64, 900), progress=items_committed(home),
                            after_each=lambda: progress.append(assert_catalog_and_index_agree(settings)))
    assert kills >= 4, f"only {kills} kills landed: the ingest finished too soon"
    assert progress[0] < len(paths), "the first kill came after the ingest had finished"
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    assert assert_catalog_and_index_agree(settings, paths) == 5001


def test_sigkilled_ingest_with_the_default_backbone_resumes(tmp_path: Path, models_dir: Path, extractor) -> None:
    catalog = tmp_path / "catalog"
    paths = write_catalog(catalog, per_category=300)
    home = tmp_path / "home"
    env = {**os.environ, "LOOKALIKE_HOME": str(home), "LOOKALIKE_MODELS_DIR": str(models_dir),
           "LOOKALIKE_BACKBONE": "efficientnet-lite0", "LOOKALIKE_BATCH_SIZE": "16", "LOOKALIKE_CHECKPOINT_EVERY": "48"}
    command = [sys.executable, "-m", "lookalike.cli", "ingest", str(catalog)]
    kills = kill_repeatedly(command, env, random.Random(7), runs=3, window=(32, 250), progress=items_committed(home))
    assert kills >= 2, "the ingest finished before it could be killed: make the catalog bigger"
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    settings = Settings(home=home, models_dir=models_dir, backbone="efficientnet-lite0",
                        _env_file=None)  # type: ignore[call-arg]
    assert_catalog_and_index_agree(settings, paths)


MANIFEST = IndexManifest("tiny+identity", "tiny", "0" * 12, 64)
SAVER = """
import sys
from pathlib import Path
import numpy as np
from lookalike.index.faiss_store import FaissStore
from lookalike.index.base import IndexManifest
directory, base = Path(sys.argv[1]), int(sys.argv[2])
manifest = IndexManifest("tiny+identity", "tiny", "0" * 12, 64)
rng = np.random.default_rng()
def unit(n):
    v = rng.normal(size=(n, 64)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)
if FaissStore.exists(directory):
    store = FaissStore.load(directory, manifest)
else:
    store = FaissStore(directory, manifest)
    store.add(np.arange(1, base + 1), unit(base), ["a"] * base)
    store.save()
print(len(store), flush=True)
while True:
    next_id = int(store.ids().max()) + 1
    store.add(np.array([next_id]), unit(1), ["b"])
    store.save()
    print(len(store), flush=True)
"""


def test_index_save_killed_at_random_moments_leaves_a_loadable_index(tmp_path: Path) -> None:
    """A process saving a 120,000-vector index over and over is SIGKILLed at random moments, 15 times: each time
    the index loads (checksums verified) and holds the last save that completed, or the one in progress."""
    directory = tmp_path / "index"
    rng = random.Random(3)
    base = 120_000
    partial = 0
    for _ in range(15):
        saver = subprocess.Popen([sys.executable, "-c", SAVER, str(directory), str(base)], stdout=subprocess.PIPE,
                                 text=True)
        assert saver.stdout is not None
        saver.stdout.readline()  # loaded or created: now saving in a loop
        time.sleep(rng.uniform(0.05, 1.2))
        saver.send_signal(signal.SIGKILL)
        saver.wait(timeout=30)
        reported = [int(line) for line in saver.stdout.read().split()]
        partial += any(directory.glob(".tmp-*"))
        store = FaissStore.load(directory, MANIFEST)
        last_done = reported[-1] if reported else None
        assert last_done is None or len(store) in (last_done, last_done + 1), (len(store), reported[-3:])
        assert len(store) >= base
    assert partial >= 3, f"only {partial} of 15 kills landed inside a save"


def make_store(directory: Path, saves: int = 2) -> FaissStore:
    store = FaissStore(directory, MANIFEST)
    vectors = np.random.default_rng(0).normal(size=(300, 64)).astype(np.float32)
    store.add(np.arange(1, 301), vectors / np.linalg.norm(vectors, axis=1, keepdims=True), ["a", "b", None] * 100)
    for i in range(saves):
        store.remove(np.array([300 - i]))
        store.save()
    return store


def flip_byte(path: Path, where: float) -> None:
    data = bytearray(path.read_bytes())
    position = min(int(len(data) * where), len(data) - 1)
    data[position] ^= 0x55
    path.write_bytes(bytes(data))


def change_last_digit(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[:-1] + ("0" if text[-1] != "0" else "1"))


def truncate(path: Path, keep: float) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


def current(directory: Path) -> Path:
    return directory / (directory / "CURRENT").read_text().split()[0]


DAMAGE = {
    "index truncated to half": (lambda d: truncate(current(d) / "index.faiss", 0.5), "truncated"),
    "index truncated to nothing": (lambda d: truncate(current(d) / "index.faiss", 0), "truncated"),
    "codes truncated": (lambda d: truncate(current(d) / "codes.npy", 0.9), "truncated"),
    "tombstones truncated": (lambda d: truncate(current(d) / "tombstones.npy", 0.5), "truncated"),
    "manifest truncated": (lambda d: truncate(current(d) / "manifest.json", 0.5), "manifest"),
    "index byte flipped at the start": (lambda d: flip_byte(current(d) / "index.faiss", 0.0), "corrupt"),
    "index byte flipped in the middle": (lambda d: flip_byte(current(d) / "index.faiss", 0.5), "corrupt"),
    "index byte flipped at the end": (lambda d: flip_byte(current(d) / "index.faiss", 1.0), "corrupt"),
    "codes byte flipped": (lambda d: flip_byte(current(d) / "codes.npy", 0.7), "corrupt"),
    "manifest byte flipped (a category name)": (lambda d: flip_byte(current(d) / "manifest.json", 0.9), "manifest"),
    "manifest rewritten as valid JSON": (lambda d: (current(d) / "manifest.json").write_text("[]"), "manifest"),
    "manifest missing": (lambda d: (current(d) / "manifest.json").unlink(), "manifest"),
    "index file missing": (lambda d: (current(d) / "index.faiss").unlink(), "missing"),
    "CURRENT missing": (lambda d: (d / "CURRENT").unlink(), "CURRENT"),
    "CURRENT empty": (lambda d: (d / "CURRENT").write_text(""), "damaged"),
    "CURRENT byte flipped in the name": (lambda d: flip_byte(d / "CURRENT", 0.05), "CURRENT"),
    "CURRENT checksum digit changed": (lambda d: change_last_digit(d / "CURRENT"), "altered"),
    "CURRENT binary garbage": (lambda d: (d / "CURRENT").write_bytes(b"\xff\xfe\x00gen"), "CURRENT"),
    "CURRENT pointing outside": (lambda d: (d / "CURRENT").write_text("../../etc"), "damaged"),
    "CURRENT pointing to a deleted generation": (lambda d: (d / "CURRENT").write_text("gen-999999"), "missing"),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damaged_index_files_are_detected_on_load_with_a_clear_message(tmp_path: Path, damage: str) -> None:
    make_store(tmp_path)
    assert len(FaissStore.load(tmp_path, MANIFEST)) == 298
    spoil, says = DAMAGE[damage]
    spoil(tmp_path)
    with pytest.raises(IndexCorruptError, match=says) as caught:
        FaissStore.load(tmp_path, MANIFEST)
    assert "--reindex" in str(caught.value)


def test_indexes_saved_before_the_manifest_checksum_still_load(tmp_path: Path) -> None:
    make_store(tmp_path)
    (tmp_path / "CURRENT").write_text(current(tmp_path).name)
    assert len(FaissStore.load(tmp_path, MANIFEST)) == 298


def run_cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lookalike.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_cli_and_serve_report_a_corrupt_index_clearly_and_reindex_repairs_it(tmp_path: Path, catalog_dir) -> None:
    backbone = write_tiny_backbone(tmp_path / "model")
    home = tmp_path / "home"
    settings = ingested(Settings(home=home, backbone=backbone, _env_file=None), catalog_dir)  # type: ignore[call-arg]
    flip_byte(current(settings.index_dir) / "index.faiss", 0.5)
    env = {**os.environ, "LOOKALIKE_HOME": str(home), "LOOKALIKE_BACKBONE": backbone, "LOOKALIKE_PORT": "1"}
    for args in (["info"], ["serve"], ["search", str(next(catalog_dir.rglob("*.png")))]):
        result = run_cli(args, env)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout, (args, result.stderr)
        assert "corrupt or truncated" in result.stderr and "--reindex" in result.stderr, (args, result.stderr)
    repaired = run_cli(["ingest", "--reindex"], env)
    assert repaired.returncode == 0, repaired.stderr
    assert assert_catalog_and_index_agree(settings) == 18
