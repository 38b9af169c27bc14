"""The package's layout: the store owns its SQL, and start-up stays light.

Read from the sources with `ast`, so a module that loads a query file in a
branch, a function or under another name is still seen.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "zoningsync"
SQL_DIR = PACKAGE / "sql"
STORE_DIR = PACKAGE / "store"
START_UP = ("zoningsync.cli", "zoningsync.commands.sync", "zoningsync.commands.run",
            "zoningsync.services.sync", "zoningsync.daemon.main", "zoningsync.sync")
KEPT_OFF_START_UP = ("zoningsync.pgcluster", "zoningsync.pgbinaries", "zoningsync.portal")


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def sql_files_loaded(path: Path) -> list[str]:
    """The `.sql` files a module loads: the literal argument of every `queries(...)` call."""
    loaded = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name != "queries":
            continue
        assert node.args and isinstance(node.args[0], ast.Constant), (
            f"{path}: queries() takes the file name as a literal, so its owner can be checked")
        loaded.append(str(node.args[0].value))
    return loaded


def loaders() -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = defaultdict(list)
    for path in modules():
        for filename in sql_files_loaded(path):
            found[filename].append(path)
    return found


def test_only_store_modules_load_sql_files() -> None:
    outside = {str(p.relative_to(PACKAGE)): f for f, paths in loaders().items()
               for p in paths if STORE_DIR not in p.parents}
    assert outside == {}


def test_each_sql_file_is_loaded_by_exactly_one_module() -> None:
    found = loaders()
    files = sorted(p.name for p in SQL_DIR.glob("*.sql"))
    assert {f: len(found.get(f, [])) for f in files} == dict.fromkeys(files, 1)


def test_every_loaded_sql_file_exists() -> None:
    assert sorted(set(loaders()) - {p.name for p in SQL_DIR.glob("*.sql")}) == []


def test_no_module_outside_the_store_imports_a_query_table() -> None:
    """A run module reaching for `store.x.SQL` would run the store's statements itself."""
    offenders = []
    for path in modules():
        if STORE_DIR in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "zoningsync.store") and any(a.name.endswith("SQL") for a in node.names):
                offenders.append(str(path.relative_to(PACKAGE)))
            if (isinstance(node, ast.Attribute) and node.attr.endswith("SQL")
                    and isinstance(node.value, ast.Name)):
                offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_nothing_imports_the_cli() -> None:
    importers = []
    for path in modules():
        if path.name == "__main__.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if "zoningsync.cli" in names:
                importers.append(str(path.relative_to(PACKAGE)))
    assert importers == []


def test_the_sync_and_run_paths_import_neither_the_cluster_nor_the_portal() -> None:
    code = (f"import sys, {', '.join(START_UP)};"
            "print(sorted(m for m in sys.modules"
            f" if m.startswith({KEPT_OFF_START_UP!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("command", ["sync", "run", "status"])
def test_help_of_a_start_up_command_imports_neither_the_cluster_nor_the_portal(
        command: str) -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "zoningsync", command,
                           "--help"], capture_output=True, text=True, check=True)
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert sorted(m for m in imported if m.startswith(KEPT_OFF_START_UP)) == []
