"""mrl last: the newest experiment's record, as `mrl info last` (and as the original did)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from metarunlog.main import main
from tests.helpers.repo import REPO_ROOT, run_mrl


def new(description: str) -> None:
    assert main(["new", "-cp", "no", description]) == 0


def out_of(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_last_is_info_of_the_newest_experiment_even_from_inside_an_older_one(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    new("first")
    new("second")
    monkeypatch.chdir(project / "output" / "0001")
    assert out_of(capsys, "last") == out_of(capsys, "info", "last")
    assert json.loads(out_of(capsys, "last", "--json"))["description"] == "second"


def test_last_path_prints_the_newest_folder_for_cd(project: Path, capsys) -> None:
    new("first")
    new("second")
    assert out_of(capsys, "last", "--path") == f"{project / 'output' / '0002'}\n"


def test_last_pipes_into_grep_as_in_the_original(project: Path) -> None:
    new("first")
    proc = subprocess.run(
        f"PYTHONPATH={REPO_ROOT} python -m metarunlog last | grep gitHash",
        shell=True,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("gitHash")


def test_last_without_any_experiment_says_to_make_one(project: Path) -> None:
    proc = run_mrl("last", cwd=project)
    assert proc.returncode == 1
    assert proc.stderr == "mrl: error: no experiment yet: make one with `mrl new`\n"


def test_last_takes_no_experiment_argument(project: Path) -> None:
    new("first")
    proc = run_mrl("last", "1", cwd=project)
    assert proc.returncode == 1 and proc.stderr.startswith("mrl: error: unrecognized arguments: 1")
