"""The CLI end to end, as a user runs it: real processes, a generated catalog, a temporary home."""

from __future__ import annotations

import json
import os
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

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "lookalike.cli", *args], env=env, capture_output=True,
                                text=True, timeout=300)
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
    second = lookalike("ingest", str(bad), "--report", str(tmp_path / "skipped.json"))
    assert "1 skipped" in second.stdout and "corrupt.png" in second.stdout
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

    filtered = lookalike("search", str(next(query_dir.rglob("*.jpg"))), "--category", "checks", "--json")
    assert {r["category"] for r in json.loads(filtered.stdout)["results"]} == {"checks"}

    info = json.loads(lookalike("info", "--json").stdout)
    assert info["items"] == 18 and info["index"]["type"] == "Flat" and info["dim"] == 4864

    trained = lookalike("train", str(catalog_dir), "--method", "pca", "--dim", "8")
    assert "reindexed 18 catalog items" in trained.stdout
    info = json.loads(lookalike("info", "--json").stdout)
    assert info["dim"] == 8 and info["head"].startswith("pca-8@") and info["index"]["count"] == 18
    assert len(lookalike("search", str(query_dir), "--json").stdout.splitlines()) == 6

    trained = lookalike("train", str(catalog_dir), "--dim", "16", "--epochs", "3", "--miner", "batch-hard",
                        "--augment", "6")
    assert "trained head triplet-16@" in trained.stdout and "on 24 images and views" in trained.stdout
    assert "best validation precision@1" in trained.stdout and "reindexed 18 catalog items" in trained.stdout
    info = json.loads(lookalike("info", "--json").stdout)
    assert info["head"].startswith("triplet-16@") and info["index"]["dim"] == 16


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
                       "--photo-like", "3")
    assert "report:" in result.stdout
    folder = Path(result.stdout.split("report:")[1].split()[0]).parent
    rows = _report(result)["rows"]
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
