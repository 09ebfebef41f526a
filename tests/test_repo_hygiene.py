"""The repository's own checks, as `.pre-commit-config.yaml` runs them: `ruff check` and
`ruff format --check` over metarunlog/ and tests/ (skipped where ruff is not installed; the
`test` extra installs it)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.helpers.repo import REPO_ROOT

PATHS = ["metarunlog", "tests"]


def ruff() -> str:
    found = shutil.which("ruff")
    if found is None:
        try:
            from ruff.__main__ import find_ruff_bin  # the pip package, when its script is not on PATH
        except ImportError:
            pytest.skip("ruff is not installed (pip install -e '.[test]')")
        found = str(find_ruff_bin())
    return found


def run_ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ruff(), *args, *PATHS], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_check_passes_on_the_package_and_the_tests() -> None:
    proc = run_ruff("check", "--no-cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_leaves_the_package_and_the_tests_unchanged() -> None:
    proc = run_ruff("format", "--check", "--no-cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pre_commit_runs_both_ruff_checks() -> None:
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text())
    entries = {hook["id"]: hook["entry"] for repo in config["repos"] for hook in repo["hooks"]}
    assert entries["ruff"] == "ruff check"
    assert entries["ruff-format"] == "ruff format --check"
