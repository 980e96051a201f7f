"""`lookalike backup` while a 30-client load runs on a real server, then `lookalike restore` into a fresh home: the
same answers to 200 queries and the same catalog; a backup killed half-way leaves the previous one whole; a
PostgreSQL catalog goes through pg_dump and pg_restore; a damaged backup is refused."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx2 as httpx
import pytest
from pydantic import SecretStr
from test_operations import Server

from lookalike.backup import BackupError, verify
from lookalike.bootstrap import open_engine
from lookalike.search import SearchService

from apiserver import TOKEN, ingested
from imagegen import CATEGORIES, make_image


def cli(settings, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOOKALIKE_HOME": str(settings.home), "LOOKALIKE_MODELS_DIR": str(settings.models_dir)}
    if settings.database_url:
        env["LOOKALIKE_DATABASE_URL"] = settings.database_url
    if settings.vector_store != "faiss":
        env |= {"LOOKALIKE_VECTOR_STORE": settings.vector_store, "LOOKALIKE_MILVUS_INDEX": settings.milvus_index}
    done = subprocess.run([sys.executable, "-m", "lookalike.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert not check or done.returncode == 0, done.stdout + done.stderr
    return done


def jpeg(category: str, seed: int) -> bytes:
    buffer = io.BytesIO()
    make_image(category, seed).save(buffer, format="JPEG")
    return buffer.getvalue()


def answers(settings, queries: list[bytes]) -> list[list[tuple[int, float]]]:
    with open_engine(settings) as engine:
        found = SearchService(engine).search_images(list(queries), k=5)
        return [[(h.id, round(h.score, 5)) for h in r.hits] for r in found]


def catalog_counts(settings) -> dict[str, object]:
    with open_engine(settings) as engine:
        return {"items": engine.catalog.count(), "categories": engine.catalog.category_counts(),
                "indexed": len(engine.store), "products": engine.catalog.products.count()}


@pytest.fixture
def home(settings, catalog_dir):
    return ingested(settings.model_copy(update={"api_token": SecretStr(TOKEN)}), catalog_dir)


def test_a_backup_under_load_restores_the_same_answers(home, tmp_path, query_dir):
    server = Server(home, 1, tmp_path / "server.log")
    stop = threading.Event()
    served, failed = [0], [0]
    data = next(query_dir.rglob("*.jpg")).read_bytes()

    def shopper(n: int) -> None:
        with httpx.Client(base_url=server.base, timeout=60) as client:
            while not stop.is_set():
                answer = client.post("/api/search?k=3", content=data,
                                     headers={"Content-Type": "image/jpeg", "X-Shopper-Id": f"s{n}"})
                served[0] += answer.status_code == 200
                failed[0] += answer.status_code != 200

    load = [threading.Thread(target=shopper, args=(n,)) for n in range(30)]
    try:
        for thread in load:
            thread.start()
        while served[0] < 60:
            time.sleep(0.05)
        done = cli(home, "backup", str(tmp_path / "backup"))
        during = served[0]
        time.sleep(0.5)
        assert served[0] > during  # the searches went on
    finally:
        stop.set()
        for thread in load:
            thread.join()
        server.stop()
    assert failed[0] == 0
    assert "backed up" in done.stdout
    manifest = verify(tmp_path / "backup")
    expected = {"index", "models", "catalog.db"} | ({"heads"} if home.heads_dir.is_dir() else set())
    assert expected <= set(manifest["parts"])

    fresh = home.model_copy(update={"home": tmp_path / "restored"})
    cli(fresh, "restore", str(tmp_path / "backup"))
    queries = [jpeg(CATEGORIES[i % len(CATEGORIES)], 1000 + i) for i in range(200)]
    assert answers(fresh, queries) == answers(home, queries)
    assert catalog_counts(fresh) == catalog_counts(home)
    with open_engine(fresh) as engine:
        assert engine.catalog.count_searches() >= 60  # the history up to the backup came along
    refused = cli(fresh, "restore", str(tmp_path / "backup"), check=False)
    assert refused.returncode != 0 and "not empty" in refused.stdout + refused.stderr


def test_a_backup_killed_half_way_leaves_the_previous_one_whole(home, tmp_path):
    dest = tmp_path / "backup"
    cli(home, "backup", str(dest))
    first = verify(dest)
    env = {**os.environ, "LOOKALIKE_HOME": str(home.home), "LOOKALIKE_MODELS_DIR": str(home.models_dir)}
    kills = 0
    for _ in range(3):
        process = subprocess.Popen([sys.executable, "-m", "lookalike.cli", "backup", str(dest), "--replace",
                                    "--features"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".backup.partial-*")) and process.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
            process.wait(60)
            assert verify(dest) == first  # the previous backup, untouched and whole
        else:
            process.wait(60)
            first = verify(dest)  # it finished first: the new one is whole
    assert kills >= 1
    cli(home, "backup", str(dest), "--replace")  # cleans what the killed ones left
    assert not list(tmp_path.glob(".backup.partial-*"))
    fresh = home.model_copy(update={"home": tmp_path / "restored"})
    cli(fresh, "restore", str(dest))
    assert catalog_counts(fresh) == catalog_counts(home)


def test_a_damaged_backup_is_refused(home, tmp_path):
    dest = tmp_path / "backup"
    cli(home, "backup", str(dest))
    manifest = json.loads((dest / "manifest.json").read_text())
    victim = dest / next(name for name in manifest["files"] if name.startswith("index/"))
    victim.write_bytes(victim.read_bytes()[:-10])
    with pytest.raises(BackupError, match="damaged"):
        verify(dest)
    fresh = home.model_copy(update={"home": tmp_path / "restored"})
    refused = cli(fresh, "restore", str(dest), check=False)
    assert refused.returncode != 0 and "damaged" in refused.stdout + refused.stderr
    assert not (tmp_path / "restored").exists() or not any((tmp_path / "restored").iterdir())


def test_a_postgresql_catalog_goes_through_pg_dump(settings, catalog_dir, postgres, tmp_path):
    source = ingested(settings.model_copy(update={"database_url": postgres.new_database()}), catalog_dir)
    with open_engine(source) as engine:
        SearchService(engine).search_images([jpeg(CATEGORIES[0], 5)], k=3)
        engine.catalog.record_search("before the backup", 3, None, 1.0, [])
    cli(source, "backup", str(tmp_path / "backup"))
    assert "catalog.pgdump" in verify(tmp_path / "backup")["parts"]
    target = settings.model_copy(update={"home": tmp_path / "restored", "database_url": postgres.new_database()})
    cli(target, "restore", str(tmp_path / "backup"))
    queries = [jpeg(CATEGORIES[i % len(CATEGORIES)], 2000 + i) for i in range(20)]
    assert answers(target, queries) == answers(source, queries)
    assert catalog_counts(target) == catalog_counts(source)
    with open_engine(target) as engine:
        assert engine.catalog.count_searches() == 1


def test_with_milvus_the_backup_holds_the_catalog_and_the_restore_re_embeds_it(settings, catalog_dir, tmp_path):
    source = ingested(settings.model_copy(update={"vector_store": "milvus", "milvus_index": "FLAT"}), catalog_dir)
    cli(source, "backup", str(tmp_path / "backup"), "--features")
    manifest = verify(tmp_path / "backup")
    assert manifest["vector_store"] == "milvus"
    assert "index" not in manifest["parts"] and "features" in manifest["parts"]  # the vectors stay in Milvus
    assert not any(name.startswith("milvus") for name in manifest["files"])
    target = source.model_copy(update={"home": tmp_path / "restored"})
    cli(target, "restore", str(tmp_path / "backup"))
    queries = [jpeg(CATEGORIES[i % len(CATEGORIES)], 3000 + i) for i in range(20)]
    assert answers(target, queries) == answers(source, queries)  # the first open re-embedded the catalog
    assert catalog_counts(target) == catalog_counts(source)
