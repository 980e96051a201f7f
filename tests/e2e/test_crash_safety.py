"""Ingest killed with SIGKILL at random points, then restarted: nothing lost, nothing duplicated,
the catalog database and the vector index agree."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from lookalike.config import Settings
from lookalike.engine import open_engine

from imagegen import write_catalog


def test_sigkilled_ingest_resumes_with_every_image_exactly_once(tmp_path: Path, models_dir: Path, extractor) -> None:
    catalog = tmp_path / "catalog"
    paths = write_catalog(catalog, per_category=600)  # 1,800 images
    home = tmp_path / "home"
    env = {**os.environ, "LOOKALIKE_HOME": str(home), "LOOKALIKE_MODELS_DIR": str(models_dir),
           "LOOKALIKE_BATCH_SIZE": "16", "LOOKALIKE_CHECKPOINT_EVERY": "48"}
    command = [sys.executable, "-m", "lookalike.cli", "ingest", str(catalog)]
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.5, 4.0))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
    assert kills >= 2, "the ingest finished before it could be killed: make the catalog bigger"
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr

    settings = Settings(home=home, models_dir=models_dir, _env_file=None)  # type: ignore[call-arg]
    engine = open_engine(settings)
    try:
        records = list(engine.catalog.iter_items())
        stored = sorted(r.path for r in records)
        assert stored == sorted(str(p.resolve()) for p in paths)  # every image, exactly once
        assert sorted(engine.store.ids().tolist()) == sorted(r.id for r in records)
        assert len(engine.store) == len(paths)
    finally:
        engine.close()
