"""The architecture rules that keep podflow/ a library (docs/ARCHITECTURE.md, "The rules")."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "podflow"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"


def _sources(*dirs: str) -> list[Path]:
    return sorted(path for name in dirs for path in (ROOT / name).rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _imports(path: Path) -> set[str]:
    """Top-level names of the absolute imports of ``path`` (relative ones stay inside podflow)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_nothing_in_the_library_imports_the_api_or_the_scheduler() -> None:
    edge = {"api", "scheduler"}
    offenders = {_relative(path): sorted(found) for path in _sources("podflow") if (found := _imports(path) & edge)}
    assert offenders == {}


def test_only_the_settings_module_reads_the_environment() -> None:
    readers = {
        _relative(path)
        for path in _sources("podflow")
        if "os.environ" in path.read_text(encoding="utf-8") or "os.getenv" in path.read_text(encoding="utf-8")
    }
    # the start-up sequence looks for typos; `podflow up` passes the environment to honcho
    assert readers <= {"podflow/settings.py", "podflow/boot.py", "podflow/cli/up.py"}, readers


def test_only_the_start_up_sequence_loads_the_settings() -> None:
    # every entry point (the CLI, the actors module, the exporter, the API app, the scheduler) calls boot()
    loaders = {
        _relative(path)
        for path in _sources("podflow", "api", "scheduler")
        if re.search(r"\bload_settings\(", path.read_text(encoding="utf-8"))
    }
    assert loaders == {"podflow/boot.py", "podflow/settings.py"}


#: what writes to the runs looks like, in SQL and in pymongo
_RUN_WRITES = re.compile(
    r"\b(?:UPDATE|INSERT INTO|DELETE FROM)\s+runs\b|\.(?:update_one|update_many|find_one_and_update|replace_one|"
    r"insert_one|delete_one|delete_many|bulk_write)\("
)


def test_only_the_store_writes_runs() -> None:
    writers = {
        _relative(path)
        for path in _sources("podflow", "api", "scheduler")
        if not _relative(path).startswith("podflow/store/") and _RUN_WRITES.search(path.read_text(encoding="utf-8"))
    }
    assert writers == set()


def test_dramatiq_is_imported_only_at_the_edge() -> None:
    edge = (
        "podflow/worker/",
        "podflow/dispatch/queue.py",
        "podflow/monitoring/",
        # the cluster-wide provider caps are Dramatiq's rate limiters (its Redis
        # backend), not its broker or middleware
        "podflow/generation/providers/slots.py",
    )
    importers = {_relative(path) for path in _sources("podflow") if "dramatiq" in _imports(path)}
    assert {name for name in importers if not name.startswith(edge)} == set()


def test_the_runner_and_thread_mode_load_no_dramatiq() -> None:
    # their interrupts and retry policy are podflow's own: no broker is needed to run
    code = (
        "import sys, podflow.dispatch.thread, podflow.runner, podflow.heartbeat, podflow.retry, podflow.lifecycle;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dramatiq'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def _library_parts() -> set[str]:
    """Every package of podflow/ (``podflow/store/``) and every top-level module (``podflow/paths.py``)."""
    packages = {_relative(init.parent) + "/" for init in LIBRARY.rglob("__init__.py")}
    modules = {_relative(path) for path in LIBRARY.glob("*.py")}
    return packages | modules


def test_the_architecture_map_names_every_package_and_module_of_the_library() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    missing = sorted(part for part in _library_parts() if f"`{part}`" not in text)
    assert missing == [], f"add a line for each to docs/ARCHITECTURE.md: {missing}"


def test_the_architecture_map_names_nothing_that_is_gone() -> None:
    named = set(re.findall(r"`(podflow/[\w/]*(?:/|\.py))`", ARCHITECTURE.read_text(encoding="utf-8")))
    assert sorted(name for name in named if not (ROOT / name).exists()) == []


def test_the_readme_links_the_architecture_map() -> None:
    assert "(docs/ARCHITECTURE.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
