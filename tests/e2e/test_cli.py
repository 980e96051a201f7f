"""The CLI end to end, as a user runs it: real processes, a generated catalog, a temporary home."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lookalike.data import fashion_mnist as fm

from imagegen import make_dataset


@pytest.fixture
def lookalike(tmp_path: Path, models_dir: Path, extractor):  # extractor: export the backbone once, up front
    env = {**os.environ, "LOOKALIKE_HOME": str(tmp_path / "home"), "LOOKALIKE_MODELS_DIR": str(models_dir),
           "LOOKALIKE_BATCH_SIZE": "8"}

    def run(*args: str, ok: bool = True, **more_env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "lookalike.cli", *args], env={**env, **more_env},
                                capture_output=True, text=True, timeout=300)
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    return run


def test_ingest_search_info_train(lookalike, catalog_dir: Path, query_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "extra"
    (bad / "stripes").mkdir(parents=True)
    (bad / "stripes" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    first = lookalike("ingest", str(catalog_dir))
    assert "added 18 of 18 images" in first.stdout
    second = lookalike("ingest", str(bad), "--report", str(tmp_path / "skipped.json"), ok=False)
    assert second.returncode == 1 and "1 skipped" in second.stdout and "corrupt.png" in second.stdout
    assert "nothing was ingested" in _said(second.stderr) and "Traceback" not in second.stderr
    assert json.loads((tmp_path / "skipped.json").read_text())[0]["path"].endswith("corrupt.png")
    again = lookalike("ingest", str(catalog_dir))
    assert "added 0 of 18 images (18 already in the catalog" in again.stdout

    result = lookalike("search", str(query_dir), "-k", "3", "--json")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 6
    for line in lines:
        assert [r["rank"] for r in line["results"]] == [1, 2, 3]
        assert {"id", "score", "category", "path"} <= set(line["results"][0])
    hits = sum(Path(line["query"]).parent.name == line["results"][0]["category"] for line in lines)
    assert hits >= 5
    assert _said(result.stderr).count("`lookalike train PATH`") == 1  # untrained (identity) head: one hint

    filtered = lookalike("search", str(next(query_dir.rglob("*.jpg"))), "--category", "checks", "--json")
    assert {r["category"] for r in json.loads(filtered.stdout)["results"]} == {"checks"}

    info = json.loads(lookalike("info", "--json").stdout)
    assert info["items"] == 18 and info["index"]["type"] == "Flat" and info["dim"] == 4864

    trained = lookalike("train", str(catalog_dir), "--method", "pca", "--dim", "8")
    assert "reindexed 18 catalog items" in trained.stdout
    info = json.loads(lookalike("info", "--json").stdout)
    assert info["dim"] == 8 and info["head"].startswith("pca-8@") and info["index"]["count"] == 18
    searched = lookalike("search", str(query_dir), "--json")
    assert len(searched.stdout.splitlines()) == 6
    assert "unsupervised (PCA); `lookalike train PATH`" in _said(searched.stderr)

    trained = lookalike("train", str(catalog_dir), "--dim", "16", "--epochs", "3", "--miner", "batch-hard",
                        "--augment", "6")
    assert "trained head triplet-16@" in trained.stdout and "on 24 images and views" in trained.stdout
    assert "best validation precision@1" in trained.stdout and "reindexed 18 catalog items" in trained.stdout
    info = lookalike("info", "--json")
    assert json.loads(info.stdout)["head"].startswith("triplet-16@") and json.loads(info.stdout)["index"]["dim"] == 16
    assert "lookalike train" not in info.stderr + lookalike("search", str(query_dir)).stderr  # trained: no hint


def _said(text: str) -> str:
    """Console text with rich's line wrapping undone."""
    return " ".join(text.split())


def _report(result: subprocess.CompletedProcess[str]) -> dict:
    folder = Path(result.stdout.split("report:")[1].split()[0]).parent
    return json.loads((folder / "report.json").read_text())


def test_train_can_fine_tune_the_backbone_and_every_command_then_uses_it(lookalike, catalog_dir: Path, query_dir: Path,
                                                                          tmp_path: Path) -> None:
    lookalike("ingest", str(catalog_dir))
    base = json.loads(lookalike("info", "--json").stdout)["backbone"]
    evaluate = ("evaluate", "--queries", str(query_dir), "--gallery", str(catalog_dir), "--baselines")
    before = _report(lookalike(*evaluate))
    assert before["meta"]["frozen backbone"] == base and before["meta"]["model"].startswith(base)
    tuned = lookalike("train", str(catalog_dir), "--fine-tune-blocks", "1", "--dim", "16", "--epochs", "2",
                      "--augment", "6")
    assert "fine-tuned backbone" in tuned.stdout and "reindexed 18 catalog items" in tuned.stdout
    heads = tmp_path / "home" / "heads"
    assert len(list(heads.glob("*.backbone-*.pt"))) == 1
    info = json.loads(lookalike("info", "--json").stdout)
    assert info["backbone"] != base and info["index"]["count"] == 18
    lines = [json.loads(line) for line in lookalike("search", str(query_dir), "-k", "3", "--json").stdout.splitlines()]
    assert len(lines) == 6 and all(len(line["results"]) == 3 for line in lines)
    after = _report(lookalike(*evaluate))  # the model is the fine-tuned one; the baseline stays the pretrained one
    assert after["meta"]["model"].startswith(info["backbone"]) and after["meta"]["frozen backbone"] == base
    assert after["rows"]["frozen backbone / clean"]["overall"] == before["rows"]["frozen backbone / clean"]["overall"]

    lookalike("train", str(catalog_dir), "--dim", "16", "--epochs", "1", "--augment", "0")  # back to the frozen one
    assert json.loads(lookalike("info", "--json").stdout)["backbone"] == base
    assert not list(heads.glob("*.backbone-*.pt"))
    refused = lookalike("train", str(catalog_dir), "--method", "pca", "--fine-tune-blocks", "1", ok=False)
    assert refused.returncode != 0 and "--fine-tune-blocks needs --method triplet" in refused.stderr + refused.stdout


def test_evaluate_writes_a_report_with_baselines(lookalike, catalog_dir: Path, query_dir: Path, tmp_path: Path) -> None:
    result = lookalike("evaluate", "--queries", str(query_dir), "--gallery", str(catalog_dir), "--baselines",
                       "--photo-like", "3", "--exact-items", "5")
    assert "report:" in result.stdout
    folder = Path(result.stdout.split("report:")[1].split()[0]).parent
    report = _report(result)
    rows = report["rows"]
    exact = report["exact_item"]  # five catalog items re-photographed in 3 styles, each searched for among all 18
    assert list(exact) == [f"{model} / {style}" for model in ("identity head", "frozen backbone", "raw pixels")
                           for style in ("mild", "strong", "studio")]
    for figures in exact.values():
        assert figures["queries"] == 5 and 0 <= figures["recall@1"] <= figures["recall@5"] <= figures["recall@10"]
        assert 1 <= figures["median rank"] <= 19 and figures["score spread@10"] >= 0
    assert exact["identity head / mild"]["recall@10"] >= 0.6  # the item among the 10 nearest of 18
    assert "exact item: mild" in result.stdout and "## Exact item" in (folder / "report.md").read_text()
    assert list(rows)[0] == "identity head / clean"
    assert {"frozen backbone / clean", "raw pixels / clean", "identity head / photo-like"} <= set(rows)
    clean = rows["identity head / clean"]
    assert clean["queries"] == 6 and clean["gallery"] == 18
    assert clean["overall"]["precision@1"] >= 5 / 6
    assert sum(map(sum, clean["confusion"])) == 6
    assert rows["identity head / photo-like"]["queries"] == 3
    for png in ("confusion.png", "per_category.png", "curves.png"):
        assert (folder / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| category |" in (folder / "report.md").read_text()
    assert (folder.parent / "LATEST").read_text() == folder.name


def test_bad_inputs_get_clear_errors(lookalike, catalog_dir: Path, tmp_path: Path) -> None:
    missing = lookalike("ingest", str(tmp_path / "nowhere"), ok=False)
    assert missing.returncode == 1 and "error:" in missing.stderr and "Traceback" not in missing.stderr
    empty = tmp_path / "q.png"
    empty.write_bytes(b"")
    result = lookalike("search", str(empty), "--json", ok=False)
    assert result.returncode == 1 and "empty" in result.stderr.lower()  # empty catalog, said plainly
    lookalike("ingest", str(catalog_dir))
    result = lookalike("search", str(empty), str(next(catalog_dir.rglob("*.png"))), "--json", ok=False)
    assert result.returncode == 2  # one query failed, the other was answered
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert "error" in lines[0] and lines[1]["results"]
    zero_k = lookalike("search", str(next(catalog_dir.rglob("*.png"))), "-k", "0", ok=False)
    assert zero_k.returncode == 1 and "k must be" in zero_k.stderr


def test_import_fashion_mnist_then_ingest_one_split(lookalike, tmp_path: Path) -> None:
    make_dataset(tmp_path / "idx", n_train=12, n_test=6)
    out = tmp_path / "fmnist"
    refused = lookalike("import", "fashion-mnist", "--data-dir", str(tmp_path / "idx"), "--out", str(out), ok=False)
    assert refused.returncode == 1 and "checksum" in refused.stderr.lower()  # generated data is not the real set
    lookalike("import", "fashion-mnist", "--data-dir", str(tmp_path / "idx"), "--out", str(out), "--no-verify")
    manifest = out / "manifest.csv"
    assert len(manifest.read_text().splitlines()) == 19
    result = lookalike("ingest", str(manifest), "--split", "test")
    assert "added 6 of 6 images" in result.stdout
    info = json.loads(lookalike("info", "--json").stdout)
    assert set(info["categories"]) == set(fm.CATEGORIES[:6])


def test_search_with_an_unknown_category_names_the_known_ones(lookalike, catalog_dir: Path, query_dir: Path) -> None:
    lookalike("ingest", str(catalog_dir))
    query = str(next(query_dir.rglob("*.jpg")))
    for extra in ((), ("--together",), ("--json",)):
        result = lookalike("search", query, "--category", "Shoes", *extra, ok=False)
        assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
        assert "unknown category 'Shoes'; known: checks, circles, stripes" in _said(result.stderr)


def test_an_ingest_that_reads_nothing_fails_and_a_partial_one_succeeds(lookalike, catalog_dir: Path,
                                                                     tmp_path: Path) -> None:
    images = sorted(catalog_dir.rglob("*.png"))[:2]
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    missing = tmp_path / "missing.csv"
    missing.write_text("path,category\nnowhere/a.png,circles\nnowhere/b.png,checks\ncorrupt.png,checks\n")
    result = lookalike("ingest", str(missing), ok=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "added 0 of 3 images" in result.stdout and "a.png" in result.stdout and "corrupt.png" in result.stdout
    assert "nothing was ingested: none of the 3 images could be read" in _said(result.stderr)

    (tmp_path / "empty" / "circles").mkdir(parents=True)
    (tmp_path / "empty" / "circles" / "notes.txt").write_text("not an image")
    result = lookalike("ingest", str(tmp_path / "empty"), ok=False)
    assert result.returncode == 1 and f"nothing to ingest: no images in {tmp_path / 'empty'}" in _said(result.stderr)

    partial = tmp_path / "partial.csv"
    partial.write_text("path,category\n" + "".join(f"{p},{p.parent.name}\n" for p in images)
                       + "nowhere/a.png,circles\ncorrupt.png,checks\n")
    result = lookalike("ingest", str(partial))
    assert "added 2 of 4 images (0 already in the catalog, 2 skipped)" in result.stdout
    assert "a.png" in result.stdout and "corrupt.png" in result.stdout and "error" not in result.stderr


def test_evaluate_on_manifests_without_a_split_column(lookalike, catalog_dir: Path, query_dir: Path,
                                                      tmp_path: Path) -> None:
    queries, gallery = tmp_path / "queries.csv", tmp_path / "gallery.csv"
    for manifest, folder in ((queries, query_dir), (gallery, catalog_dir)):
        manifest.write_text("path,category\n" + "".join(f"{p},{p.parent.name}\n" for p in sorted(folder.rglob("*.*"))))
    used = lookalike("evaluate", "--queries", str(queries), "--gallery", str(gallery))  # no split asked: all rows
    assert f"{queries} has no split column: using all its rows as the queries" in _said(used.stderr)
    assert f"{gallery} has no split column: using all its rows as the gallery" in _said(used.stderr)
    report = _report(used)
    assert report["rows"]["identity head / clean"]["queries"] == 6 and report["meta"]["gallery size"] == 18

    for option, value in (("--query-split", "test"), ("--gallery-split", "train")):
        refused = lookalike("evaluate", "--queries", str(queries), "--gallery", str(gallery), option, value, ok=False)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        side = queries if option == "--query-split" else gallery
        assert f"{side} has no split column; {option} \"\" uses all its rows" in _said(refused.stderr)
    everything = lookalike("evaluate", "--queries", str(queries), "--gallery", str(gallery), "--query-split", "",
                           "--gallery-split", "")
    assert _report(everything)["rows"]["identity head / clean"]["queries"] == 6 and "split" not in everything.stderr

    itself = lookalike("evaluate", "--queries", str(queries), ok=False)  # the gallery defaults to the same rows
    assert itself.returncode == 2 and "Traceback" not in itself.stderr
    assert "every query would find itself" in _said(itself.stderr)


def test_evaluate_table_fits_80_columns(lookalike, catalog_dir: Path, query_dir: Path) -> None:
    from lookalike.evaluation.report import HEADLINE

    result = lookalike("evaluate", "--queries", str(query_dir), "--gallery", str(catalog_dir), "--baselines",
                       "--photo-like", "2", COLUMNS="80")
    table = result.stdout.split("report:")[0].splitlines()  # the report's path may be longer than 80 characters
    assert table and all(len(line) <= 80 for line in table), "\n".join(table)
    for metric in HEADLINE:  # a row per metric and query set, its three values (head, frozen backbone, pixels) intact
        rows = [line for line in table if re.search(rf"\b{re.escape(metric)}\b", line)]
        assert len(rows) == 2 and all(len(re.findall(r"\b[01]\.\d{4}\b", row)) == 3 for row in rows), rows
    for name in ("identity head", "frozen backbone", "raw pixels", "clean", "photo-like"):
        assert any(name in line for line in table), name
