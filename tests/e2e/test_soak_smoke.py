"""The soak benchmark's smoke version: 4 clients for 10 s of mixed search/add/delete against `lookalike serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lookalike.config import Settings

from apiserver import ingested
from imagegen import write_tiny_backbone

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


def test_soak_smoke_serves_every_request_without_errors(tmp_path: Path, catalog_dir: Path) -> None:
    backbone = write_tiny_backbone(tmp_path / "model")
    home = tmp_path / "home"
    ingested(Settings(home=home, backbone=backbone, _env_file=None), catalog_dir)  # type: ignore[call-arg]
    out = tmp_path / "soak.json"
    result = subprocess.run([sys.executable, str(SOAK), "--home", str(home), "--clients", "4", "--duration", "10",
                             "--warmup", "2", "--mix", "search=0.6,add=0.2,delete=0.2", "--out", str(out)],
                            env={**os.environ, "LOOKALIKE_BACKBONE": backbone}, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["errors"] == 0, summary["error_examples"]
    assert summary["requests"] >= 40
    operations = summary["operations"]
    assert set(operations) == {"search", "add", "delete"}
    for stats in operations.values():
        assert 0 < stats["p50_ms"] <= stats["p95_ms"] <= stats["p99_ms"] <= stats["max_ms"]
    adds, deletes = operations["add"]["requests"], operations["delete"]["requests"]
    assert summary["catalog_items_end"] - summary["catalog_items_start"] == adds - deletes
    assert summary["rss_mb"]["start_after_warmup"] > 0 and summary["rss_mb"]["end"] > 0
