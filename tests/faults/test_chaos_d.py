"""Faults the tenth adversarial pass found (docs/dev-notes/wave2/chaos-d.md), each with real
mrl processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends.contract import make_experiment
from tests.helpers.repo import run_mrl


@pytest.mark.parametrize(
    "args",
    [
        ["status", ""],
        ["run", ""],
        ["cancel", ""],
        ["rerun", ""],
        ["table", ""],
        ["info", ""],
        ["verify", ""],
        ["info", "--verify", ""],
        ["makebatch", ""],
        ["analyze", ""],
    ],
)
@pytest.mark.parametrize("where", ["project", "experiment", "sub-experiment"])
def test_an_empty_experiment_is_an_error_not_the_current_folder(project: Path, args: list[str], where: str) -> None:
    # before: '' was Path('') = '.': `mrl status ''` named the experiment '.', and inside an
    # experiment or sub-experiment folder `mrl rerun "$EXP"` with EXP unset made a new experiment
    exp = make_experiment(project, [{"x": 1}], "echo ran")
    cwd = {"project": project, "experiment": exp.dir, "sub-experiment": exp.dir / "001"}[where]
    proc = run_mrl(*args, cwd=cwd)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("mrl: error: '' is not an experiment"), proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert sorted(p.name for p in exp.dir.parent.iterdir() if not p.name.startswith(".")) == [exp.dir.name]


@pytest.mark.parametrize("command", ["ls", "table"])
def test_an_empty_tag_to_select_by_is_an_error(project: Path, command: str) -> None:
    # before: `mrl ls --tag ''` said "no experiment is tagged  (tag one ...)", exit 0
    make_experiment(project, [{"x": 1}], "echo ran")
    proc = run_mrl(command, "--tag", "", cwd=project)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "bad tag ''" in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr
