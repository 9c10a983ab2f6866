"""`gateway` and `schema` are this repository's packages, never a same-named library from PyPI."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["gateway", "schema"])
def test_package_resolves_to_this_repository(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().is_relative_to(ROOT), module.__file__
    assert Path(module.__file__).resolve().parent == ROOT / name


def test_schema_is_ours_and_not_the_pypi_schema_library() -> None:
    import schema

    # PyPI's `schema` exports Schema, And, Or, Use...; ours builds the GraphQL schema.
    assert callable(schema.build_schema)
    assert not hasattr(schema, "Use")


def test_a_fresh_interpreter_outside_the_repository_finds_the_same_packages(tmp_path: Path) -> None:
    # Run from elsewhere, so the working directory cannot be what puts the repository on sys.path:
    # the installed project must resolve these names to its own packages.
    code = "import gateway, schema; print(gateway.__file__); print(schema.__file__)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True
    )
    gateway_file, schema_file = (Path(line).resolve() for line in result.stdout.split())
    assert gateway_file == ROOT / "gateway" / "__init__.py"
    assert schema_file == ROOT / "schema" / "__init__.py"
