"""Catalog source tests: folders of images and CSV/Parquet manifests (generated in tmp_path)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lookalike.data.sources import CatalogEntry, iter_folder, open_source, read_manifest
from lookalike.errors import CatalogSourceError


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    for rel in [
        "top.JPG",
        "shoes/b.png",
        "shoes/a.jpeg",
        "shoes/nested/deep/c.webp",
        "bags/x.HEIC",
        "bags/y.tiff",
        "bags/notes.txt",
        "bags/.hidden.jpg",
        ".thumbs/t.jpg",
        "shoes/.cache/z.png",
        "readme.md",
        "dresses/no_ext",
    ]:
        touch(root / rel)
    return root


# ------------------------------------------------------------------------------------------ folder


def test_iter_folder_categories_and_order(folder: Path) -> None:
    entries = list(iter_folder(folder))
    rel = [e.path.relative_to(folder.resolve()).as_posix() for e in entries]
    assert rel == [
        "top.JPG",
        "bags/x.HEIC",
        "bags/y.tiff",
        "shoes/a.jpeg",
        "shoes/b.png",
        "shoes/nested/deep/c.webp",
    ]
    assert [e.category for e in entries] == [None, "bags", "bags", "shoes", "shoes", "shoes"]
    assert all(e.item_id is None and e.metadata == {} for e in entries)
    assert all(e.path.is_absolute() for e in entries)
    assert list(iter_folder(folder)) == entries  # deterministic


def test_iter_folder_resolves_relative_root(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(folder.parent)
    entries = list(iter_folder(Path("catalog")))
    assert entries[0].path == (folder / "top.JPG").resolve()


def test_iter_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(CatalogSourceError, match="not found"):
        list(iter_folder(tmp_path / "missing"))
    file = touch(tmp_path / "a.jpg")
    with pytest.raises(CatalogSourceError, match="not a folder"):
        list(iter_folder(file))


def test_iter_folder_empty(tmp_path: Path) -> None:
    assert list(iter_folder(tmp_path)) == []


def test_catalog_entry_is_frozen_and_hashable(tmp_path: Path) -> None:
    entry = CatalogEntry(path=tmp_path / "a.jpg", category="c", item_id="1", metadata={"k": 1})
    with pytest.raises(AttributeError):
        entry.category = "d"  # type: ignore[misc]
    assert hash(entry) == hash(CatalogEntry(tmp_path / "a.jpg", "c", "1", {"k": 2}))


# ---------------------------------------------------------------------------------------- manifest


def test_csv_manifest(tmp_path: Path) -> None:
    images = tmp_path / "shop"
    touch(images / "img" / "a.jpg")
    abs_path = touch(tmp_path / "elsewhere" / "b.png")
    manifest = images / "items.csv"
    manifest.write_text(
        "path,category,item_id,price,brand,on_sale\n"
        "img/a.jpg,Shoes,00123,19.5,Acme,true\n"
        f"{abs_path},,,,Other,false\n"
        "./img/../img/c.jpg, Bags ,7,3,,\n",
        encoding="utf-8",
    )
    entries = read_manifest(manifest)
    assert [e.path for e in entries] == [
        (images / "img/a.jpg").resolve(),
        abs_path.resolve(),
        (images / "img/c.jpg").resolve(),
    ]
    assert [e.category for e in entries] == ["Shoes", None, "Bags"]
    assert [e.item_id for e in entries] == ["00123", None, "7"]
    assert entries[0].metadata == {"price": 19.5, "brand": "Acme", "on_sale": True}
    assert entries[1].metadata == {"brand": "Other", "on_sale": False}  # NaN price omitted
    assert entries[2].metadata == {"price": 3.0}
    for e in entries:
        json.dumps(e.metadata)
        assert all(type(v) in (int, float, str, bool) for v in e.metadata.values())


def test_csv_manifest_resolved_against_manifest_folder_not_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "x.csv").write_text("path\na.jpg\n")
    monkeypatch.chdir(tmp_path)
    (entry,) = read_manifest(Path("m/x.csv"))
    assert entry.path == (tmp_path / "m" / "a.jpg").resolve()
    assert entry.category is None and entry.item_id is None and entry.metadata == {}


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_parquet_manifest(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame(
        {
            "path": ["a.jpg", "sub/b.jpg", "c.jpg"],
            "category": ["Dress", None, ""],
            "item_id": [10, 11, 12],
            "price": [1.25, np.nan, 3.0],
            "stock": np.array([1, 2, 3], dtype=np.int64),
            "flag": [True, False, True],
            "tags": [["red", "summer"], [], None],
            "when": pd.to_datetime(["2024-01-02", None, "2024-03-04"]),
        }
    )
    manifest = tmp_path / f"catalog{suffix}"
    frame.to_parquet(manifest)
    entries = read_manifest(manifest)
    assert [e.path for e in entries] == [
        (tmp_path / "a.jpg").resolve(),
        (tmp_path / "sub/b.jpg").resolve(),
        (tmp_path / "c.jpg").resolve(),
    ]
    assert [e.category for e in entries] == ["Dress", None, None]
    assert [e.item_id for e in entries] == ["10", "11", "12"]
    assert entries[0].metadata == {
        "price": 1.25,
        "stock": 1,
        "flag": True,
        "tags": ["red", "summer"],
        "when": "2024-01-02T00:00:00",
    }
    assert entries[1].metadata == {"stock": 2, "flag": False, "tags": []}
    assert "tags" not in entries[2].metadata
    for e in entries:
        assert json.loads(json.dumps(e.metadata)) == e.metadata
        assert type(e.metadata["stock"]) is int


def test_parquet_item_id_float_with_nan(tmp_path: Path) -> None:
    manifest = tmp_path / "m.parquet"
    pd.DataFrame({"path": ["a.jpg", "b.jpg"], "item_id": [5.0, math.nan]}).to_parquet(manifest)
    assert [e.item_id for e in read_manifest(manifest)] == ["5", None]


def test_manifest_missing_path_column(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,category\na.jpg,x\n")
    with pytest.raises(CatalogSourceError, match="no 'path' column.*file, category"):
        read_manifest(manifest)
    pq = tmp_path / "m.parquet"
    pd.DataFrame({"file": ["a.jpg"]}).to_parquet(pq)
    with pytest.raises(CatalogSourceError, match="no 'path' column"):
        read_manifest(pq)


def test_manifest_empty_path_cell(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,category\na.jpg,x\n,y\n")
    with pytest.raises(CatalogSourceError, match="row 2: empty 'path'"):
        read_manifest(manifest)


def test_manifest_header_only(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,category\n")
    assert read_manifest(manifest) == []


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("m.json", b"[]", "Unsupported manifest type '.json'"),
        ("m.csv", b"", "is empty"),
        ("m.parquet", b"not parquet at all", "Could not read manifest"),
        ("m.csv", b'path,a\n"x.jpg,1\n', "Could not read manifest"),
    ],
)
def test_manifest_bad_files(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    manifest = tmp_path / name
    manifest.write_bytes(content)
    with pytest.raises(CatalogSourceError, match=message):
        read_manifest(manifest)


def test_manifest_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogSourceError, match="Manifest not found"):
        read_manifest(tmp_path / "nope.csv")
    with pytest.raises(CatalogSourceError, match="not a file"):
        read_manifest(tmp_path)


# ------------------------------------------------------------------------------------------ open


def test_open_source_dispatch(folder: Path, tmp_path: Path) -> None:
    assert open_source(folder) == list(iter_folder(folder))
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,split\na.jpg,train\nb.jpg,test\nc.jpg,train\nd.jpg,\n")
    assert len(open_source(manifest)) == 4
    train = open_source(manifest, split="train")
    assert [e.path.name for e in train] == ["a.jpg", "c.jpg"]
    assert [e.path.name for e in open_source(manifest, split="test")] == ["b.jpg"]
    assert open_source(manifest, split="valid") == []


def test_open_source_split_without_column(tmp_path: Path, folder: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,category\na.jpg,x\n")
    with pytest.raises(CatalogSourceError, match="no 'split' column"):
        open_source(manifest, split="train")
    pq = tmp_path / "m.parquet"
    pd.DataFrame({"path": ["a.jpg"], "split": [None]}).to_parquet(pq)
    assert open_source(pq, split="train") == []  # column present, all empty: no error
    with pytest.raises(CatalogSourceError, match="folders have no splits"):
        open_source(folder, split="train")


def test_open_source_missing(tmp_path: Path) -> None:
    with pytest.raises(CatalogSourceError, match="not found"):
        open_source(tmp_path / "missing")


def test_iter_folder_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    touch(outside / "o.jpg")
    root = tmp_path / "catalog"
    touch(root / "shoes" / "a.jpg")
    (root / "shoes" / "link.jpg").symlink_to(outside / "o.jpg")
    (root / "shoes" / "broken.jpg").symlink_to(tmp_path / "gone.jpg")
    (root / "linked_dir").symlink_to(outside, target_is_directory=True)
    (root / "shoes" / "loop").symlink_to(root, target_is_directory=True)
    names = [e.path.name for e in iter_folder(root)]
    assert names == ["a.jpg", "link.jpg"]
