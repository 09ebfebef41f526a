"""mrl rerun: a new experiment at HEAD from an experiment's param sets (issue 12), and what it
shares with mrl reproduce (whose own tests are in tests/commands/test_reproduce.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from metarunlog.main import main
from tests.helpers.records import params_of
from tests.helpers.records import record_of as record
from tests.helpers.repo import commit_all, run_mrl, set_cfg

OUT = Path("output")


@pytest.fixture
def buggy(project: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """Experiment 0001 of the 3x3 conf.lua grid, run with a train.py that fails for lr 0.04."""
    (project / "train.py").write_text(
        "import sys\nlr = float(open('conf.lua').read().split('learning_rate = ')[1].split(',')[0])\n"
        "sys.exit(1 if lr == 0.04 else 0)\n"
    )
    set_cfg(project, run={"command": f"{sys.executable} {{{{codeDir}}}}/train.py"})
    commit_all(project, "a bug for lr 0.04")
    assert main(["new", "buggy"]) == 0
    assert main(["makebatch"]) == 0
    assert main(["run"]) == 1
    capsys.readouterr()
    return project


def fix(project: Path) -> str:
    (project / "train.py").write_text("print('fixed')\n")
    return commit_all(project, "fix the bug")


def test_rerun_failed_makes_a_new_experiment_at_head_with_the_failed_param_sets(
    buggy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = fix(buggy)
    assert main(["rerun", "1", "--failed"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == str(buggy / OUT / "0002")
    assert "0002 reruns 3 sub-experiment(s) of 0001 (004, 005, 006)" in out and "mrl run 2" in out
    rec = record(buggy, "0002")
    assert rec["gitHash"] == head
    assert rec["rerunOf"] == {"expId": 1, "subExpIds": [4, 5, 6], "gitHash": record(buggy, "0001")["gitHash"]}
    old = params_of(buggy, "0001")
    assert params_of(buggy, "0002") == {n: old[n] for n in ("004", "005", "006")}
    rendered = (buggy / OUT / "0001" / "005" / "conf.lua").read_text()
    assert (buggy / OUT / "0002" / "005" / "conf.lua").read_text() == rendered
    assert (buggy / OUT / "0002" / "code" / "train.py").read_text() == "print('fixed')\n"
    assert main(["run", "2"]) == 0  # ready to run, on the new code


def test_rerun_takes_a_selection_and_copies_the_sources_config_files(buggy: Path) -> None:
    (buggy / OUT / "0001" / "conf.lua").write_text("lr = {{lr}}\n-- MRL:grid['lr'] = [1]\n")
    assert main(["rerun", "1", "1,3"]) == 0
    assert sorted(params_of(buggy, "0002")) == ["001", "003"]
    assert (buggy / OUT / "0002" / "003" / "conf.lua").read_text() == "lr = 0.01\n"
    assert record(buggy, "0002")["rerunOf"]["subExpIds"] == [1, 3]
    assert record(buggy, "0002")["copied"] == {"conf.lua": "0001"}


def test_rerun_with_nothing_failed_is_one_error_and_makes_nothing(project: Path) -> None:
    assert main(["new"]) == 0
    assert main(["makebatch"]) == 0
    r = run_mrl("rerun", "1", "--failed", cwd=project)
    assert r.returncode == 1 and r.stderr.startswith("mrl: error: no failed sub-experiment in 0001")
    assert r.stderr.count("\n") == 1
    assert sorted(p.name for p in (project / OUT).iterdir() if p.name[0] != ".") == ["0001"]


def test_a_rerun_that_cannot_render_leaves_no_experiment_behind(buggy: Path) -> None:
    (buggy / "conf.lua").write_text("lr = {{lr}} m = {{momentum}}\n-- MRL:grid['lr'] = [1]\n")
    fix(buggy)
    r = run_mrl("rerun", "1", "--failed", "-cp", "basedir", cwd=buggy)
    assert r.returncode == 1 and "momentum" in r.stderr and "Traceback" not in r.stderr
    assert not (buggy / OUT / "0002").exists()
    assert os.readlink(buggy / "last") == os.path.join("output", "0001")


def test_rerun_cp_no_is_refused_before_anything_is_made_when_there_are_templates(buggy: Path) -> None:
    r = run_mrl("rerun", "1", "--failed", "-cp", "no", cwd=buggy)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == (
        "mrl: error: -cp no: mrl rerun renders its sub-experiments from the copied templates (conf.lua); "
        "give -cp EXP or -cp basedir (default: the experiment rerun)\n"
    )
    assert not (buggy / OUT / "0002").exists()


def test_a_rerun_in_link_mode_with_notclean_shares_the_unchanged_files_only(buggy: Path) -> None:
    set_cfg(buggy, snapshot="link")
    commit_all(buggy, "link")
    (buggy / "train.py").write_text("print('fixed, not committed')\n")
    r = run_mrl("rerun", "1", "--failed", "-nc", cwd=buggy)
    assert r.returncode == 0, r.stderr
    old, new = buggy / OUT / "0001" / "code", buggy / OUT / "0002" / "code"
    assert (new / "train.py").read_text() == "print('fixed, not committed')\n"
    assert os.stat(new / "train.py").st_nlink == 1
    assert os.stat(new / "conf.lua").st_ino == os.stat(old / "conf.lua").st_ino
    assert "sys.exit" in (old / "train.py").read_text()
    assert run_mrl("verify", "2", cwd=buggy).returncode == 0
    assert run_mrl("verify", "1", cwd=buggy).returncode == 0


@pytest.mark.parametrize("command", ["rerun", "reproduce"])
def test_the_help_says_what_it_does_and_what_it_writes(project: Path, command: str) -> None:
    r = run_mrl(command, "--help", cwd=project)
    assert r.returncode == 0
    assert "Writes OUTDIR/<id>/" in r.stdout and ("rerunOf" if command == "rerun" else "reproduces") in r.stdout


@pytest.mark.parametrize("command", ["rerun", "reproduce"])
def test_extend_of_a_rerun_or_reproduce_of_a_grid_batch_remembers_the_sources_grid(project: Path, command: str) -> None:
    """A batch swept with --grid (no template) rerun or reproduced in part: `--extend` adds
    the source grid's other combinations, never a param-less run nobody asked for."""
    set_cfg(project, confTemplFile=None, copyFiles=[], run={"command": "echo {{ params | cli_args }}"})
    commit_all(project, "flag script")
    assert main(["new", "grid"]) == 0
    assert main(["makebatch", "--grid", "lr=0.1,0.01", "--grid", "hidden=16,64"]) == 0
    assert main([command, "1", "2,3"]) == 0
    r = run_mrl("makebatch", "2", "--extend", "--dry-run", cwd=project)
    assert r.returncode == 0 and "would make 2 sub-experiment(s)" in r.stdout, r.stdout + r.stderr
    assert run_mrl("makebatch", "2", "--extend", cwd=project, check=True).returncode == 0
    made = params_of(project, "0002")
    assert sorted(map(str, made.values())) == sorted(map(str, params_of(project, "0001").values()))
    assert "{}" not in map(str, made.values())
    again = run_mrl("makebatch", "2", "--extend", cwd=project)
    assert again.returncode == 0 and len(params_of(project, "0002")) == 4


@pytest.mark.parametrize("command", ["rerun", "reproduce"])
def test_a_rerun_of_a_batch_with_repeats_keeps_repeat_as_a_repeat_axis(
    project: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """0001 was made with --repeat 2: its `repeat` is averaged over. Its rerun (or
    reproduction) has the same param sets, but recorded no repeats, so `repeat` became a
    factor: `--aggregate` gave one row per run (n 1) and the report coloured by it."""
    (project / "train.py").write_text("import json\njson.dump({'loss': 0.5}, open('metrics.json', 'w'))\n")
    set_cfg(project, confTemplFile=None, copyFiles=[], run={"command": f"{sys.executable} {{{{codeDir}}}}/train.py"})
    commit_all(project, "train")
    assert main(["new", "seeds"]) == 0
    assert main(["makebatch", "--grid", "lr=0.1,1", "--repeat", "2"]) == 0
    assert main([command, "1"]) == 0
    assert record(project, "0002")["batch"]["repeat"] == 2
    assert main(["run", "2"]) == 0
    capsys.readouterr()
    proc = run_mrl("table", "2", "--aggregate", "--csv", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["lr,n,loss,loss_std", "0.1,2,0.5,0.0", "1,2,0.5,0.0"]
