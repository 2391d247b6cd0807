"""Imports point one way (DESIGN.md): cli -> coordinator | worker -> client | store -> domain.
The worker never imports store: it speaks the API like any remote worker (invariant 6)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hivescribe

PACKAGE = Path(hivescribe.__file__).parent

# What each part may import from hivescribe (besides itself and the package root).
ALLOWED = {
    "domain": set(),
    "store": {"domain"},
    "blobs": {"domain"},
    "sources": {"domain", "store"},  # sources yield store.NewItem rows
    "dataset": {"domain", "store"},
    "client": {"domain"},
    "backends": {"domain"},
    "worker": {"domain", "client", "backends"},
    # the coordinator serves source files (tar members, Parquet cells) and writes the dataset;
    # it checks a task's model_id against the model registry (backends/registry.py, plain data)
    "coordinator": {"domain", "store", "blobs", "config", "sources", "dataset", "backends"},
    "config": {"domain"},
    # the TUI is a remote client: it reads the API over HTTP, never the store
    "monitor": {"domain", "client", "config"},
}


def hivescribe_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "hivescribe" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_imports_point_one_way(part: str) -> None:
    target = PACKAGE / part
    files = sorted(target.rglob("*.py")) if target.is_dir() else [PACKAGE / f"{part}.py"]
    assert files
    for path in files:
        bad = hivescribe_imports(path) - ALLOWED[part] - {part}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"
