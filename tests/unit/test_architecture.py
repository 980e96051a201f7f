"""The layering contracts in .importlinter hold, and would catch an import circle or a layer pointing up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(source_root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter with the project's contracts over the ``lookalike`` package found in ``source_root``."""
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run([str(LINT_IMPORTS), str(ROOT / ".importlinter"), "--no-cache"],
                          cwd=source_root, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def source_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "src" / "lookalike", tmp_path / "lookalike",
                    ignore=shutil.ignore_patterns("__pycache__", "web"))
    return tmp_path


def test_the_code_keeps_its_layers(source_copy):
    done = lint_imports(source_copy)
    assert done.returncode == 0, done.stdout[-3000:]


def test_an_import_circle_breaks_the_contract(source_copy):
    """engine.py is a leaf: making it import a module that imports it (even only for type checking) is a circle."""
    engine = source_copy / "lookalike" / "engine.py"
    engine.write_text(engine.read_text().replace(
        "from __future__ import annotations\n",
        "from __future__ import annotations\n\nfrom typing import TYPE_CHECKING\n\n"
        "if TYPE_CHECKING:\n    from lookalike.search import SearchService  # noqa: F401\n", 1))
    done = lint_imports(source_copy)
    assert done.returncode != 0 and "BROKEN" in done.stdout, done.stdout[-3000:]


def test_a_lower_layer_building_engines_breaks_the_contract(source_copy):
    search = source_copy / "lookalike" / "search.py"
    search.write_text(search.read_text() + "\nfrom lookalike.bootstrap import open_engine  # noqa: E402, F401\n")
    done = lint_imports(source_copy)
    assert done.returncode != 0 and "Only the commands" in done.stdout, done.stdout[-3000:]
