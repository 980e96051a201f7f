"""`lookalike duplicates` and `lookalike search --together` as real processes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from test_cli import lookalike  # noqa: F401  (the fixture running the CLI in a temporary home)


def test_duplicates_as_json_and_csv(lookalike, product_catalog, tmp_path: Path) -> None:  # noqa: F811
    folder, planted = product_catalog
    lookalike("ingest", str(folder))
    result = lookalike("duplicates")
    body = json.loads(result.stdout)
    found = [{Path(item["path"]).name for item in group["items"]} for group in body["groups"]]
    assert sorted(map(sorted, found)) == sorted(map(sorted, planted))
    assert body["threshold"] == body["calibration"]["threshold"] and body["calibration"]["separable"]
    assert "5 groups, 10 items" in result.stderr
    # 0.999999: above the reach of the aligned pixels (10x the threshold's distance from 1) too
    lookalike("duplicates", "--format", "csv", "--output", str(tmp_path / "dups.csv"), "--threshold", "0.999999")
    rows = list(csv.DictReader((tmp_path / "dups.csv").open()))
    assert {Path(r["path"]).name for r in rows} == {"tees-3.png", "copy-exact.png"}
    assert {r["group"] for r in rows} == {"1"} and float(rows[0]["min_score"]) >= 0.999999
    bad = lookalike("duplicates", "--format", "xml", ok=False)
    assert bad.returncode != 0 and "json or csv" in bad.stderr
    out_of_range = lookalike("duplicates", "--threshold", "1.5", ok=False)
    assert out_of_range.returncode == 1 and "threshold" in out_of_range.stderr


def test_search_together_uses_all_images_as_one_query(lookalike, catalog_dir: Path, query_dir: Path) -> None:  # noqa: F811
    lookalike("ingest", str(catalog_dir))
    stripes = sorted((query_dir / "stripes").iterdir())
    result = lookalike("search", *map(str, stripes), "--together", "--json", "-k", "3")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 1 and lines[0]["query"].startswith("2 examples:")
    assert [r["category"] for r in lines[0]["results"]] == ["stripes"] * 3
