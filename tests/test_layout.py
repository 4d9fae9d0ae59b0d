"""The architecture rules that keep podflow/ a library (STYLE.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_nothing_in_the_library_imports_the_api_or_the_scheduler() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(found)
        for path in (ROOT / "podflow").rglob("*.py")
        if (found := _imports(path) & {"api", "scheduler"})
    }
    assert offenders == {}


def test_only_the_settings_module_reads_the_environment() -> None:
    readers = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "podflow").rglob("*.py")
        if "os.environ" in path.read_text(encoding="utf-8") or "os.getenv" in path.read_text(encoding="utf-8")
    }
    # the start-up sequence looks for typos; `podflow up` passes the environment to honcho
    assert readers <= {"podflow/settings.py", "podflow/boot.py", "podflow/cli/up.py"}, readers


def test_the_runner_and_thread_mode_load_no_dramatiq() -> None:
    # their interrupts and retry policy are podflow's own: no broker is needed to run
    code = (
        "import sys, podflow.dispatch.thread, podflow.runner, podflow.heartbeat, podflow.retry, podflow.lifecycle;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dramatiq'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
