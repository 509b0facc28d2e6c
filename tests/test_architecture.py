"""The layers of docs/architecture.md, enforced: the import-linter contracts in pyproject.toml hold.

`make lint` runs the same contracts; here they run in the suite, so CI fails
when an import breaks a layer. The second test proves they bite: the same
contracts over a copy of the packages with one import that breaks a layer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("deliverydash", "app", "queries", "delivery", "ingest")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter over the packages under `root`, with the contracts of `root/pyproject.toml`."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
            "--no-cache",
        ],
        cwd=root,
        # First on the path, so the packages under `root` are analysed, not the installed ones.
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_contract_is_kept() -> None:
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "wrong_import", "contract"),
    [
        ("queries/scope.py", "import delivery.config", "the queries never import the engine BROKEN"),
        ("ingest/ids.py", "import queries.scope", "queries read the contracts BROKEN"),
        ("delivery/retry.py", "import deliverydash.options", "between the command and the contracts BROKEN"),
        ("delivery/queue/base.py", "import delivery.worker", "of any package BROKEN"),
        ("delivery/worker.py", "from delivery.transport import http1", "knows which HTTP client runs"),
        ("delivery/sender.py", "import aiohttp", "partner simulator's servers"),
    ],
)
def test_a_wrong_import_breaks_a_contract(
    tmp_path: Path, module: str, wrong_import: str, contract: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    with (tmp_path / module).open("a", encoding="utf-8") as source:
        source.write(f"\n{wrong_import}  # breaks a layer on purpose\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert contract in done.stdout
