"""The speed benchmark suite runs end to end on tiny sizes (so it cannot rot) and writes its Markdown section."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_suite_measures_every_stage_and_writes_markdown(tmp_path: Path, models_dir: Path) -> None:
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text("# Benchmarks\n\nHand-written notes stay.\n")
    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--work", str(tmp_path / "work"),
               "--results", str(tmp_path / "results"), "--markdown", str(markdown), "--models-dir", str(models_dir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]

    ingest = json.loads((tmp_path / "results" / "ingest.json").read_text())
    assert set(ingest["images_per_s"]) == {"ingest", "backbone", "backbone_one_run", "backbone_runs_per_core", "eager"}
    assert ingest["images_per_s"]["backbone"] == max(ingest["images_per_s"]["backbone_one_run"],
                                                     ingest["images_per_s"]["backbone_runs_per_core"])
    assert all(rate > 0 for rate in ingest["images_per_s"].values())

    latency = json.loads((tmp_path / "results" / "latency.json").read_text())
    assert latency["demo"]["sequential"]["errors"] == 0 and latency["demo"]["sequential"]["requests"] == 20
    runs = [latency["demo"][key] for key in ("load_batching_on", "load_batching_off", "load_workers_2")]
    runs += latency["demo"]["open_loop_batching_on"] + latency["demo"]["open_loop_workers_2"]
    assert len(runs) == 9 and all(run["errors"] == 0 and run["requests"] > 0 for run in runs)
    for run in runs:  # the server's own CPU and in-handler time, measured beside the latency
        assert run["server_cpu_ms_per_search"] > 0 and 0 < run["server_cores_busy"] <= 64
        assert 0 < run["handler_p50_ms"] <= run["handler_p99_ms"] <= run["p99_ms"]
    assert latency["scaled"]["catalog_items"] == 2000 and latency["scaled"]["sequential"]["errors"] == 0

    rows = json.loads((tmp_path / "results" / "scale.json").read_text())["rows"]
    flat = [r for r in rows if r["index"] == "Flat"]
    hnsw = [r for r in rows if r["index"].startswith("HNSW")]
    assert [r["items"] for r in flat] == [500, 2000] and all(r["recall_at_10"] == 1.0 for r in flat)
    assert all(0.9 <= r["recall_at_10"] <= 1.0 for r in hnsw)

    text = markdown.read_text()
    assert "Hand-written notes stay." in text
    assert text.count("<!-- speed-suite:begin -->") == 1
    assert re.search(r"\| 2,000 items \| 20 \| [\d.]+ \|", text)
    assert "micro-batching on" in text and "Ingest / bare backbone" in text
    assert "2 processes (`--workers 2`)" in text and "Open loop" in text and "server CPU ms/search" in text
