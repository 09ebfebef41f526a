"""mrl rerun and mrl reproduce: new experiments from an experiment's param sets (issue 12)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from metarunlog.main import main
from tests.helpers.repo import commit_all, git, run_mrl, set_cfg

OUT = Path("output")


def record(project: Path, name: str) -> dict:
    return json.loads((project / OUT / name / ".mrl").read_text())


def params_of(project: Path, name: str) -> dict[str, dict]:
    exp = project / OUT / name
    return {p.parent.name: json.loads(p.read_text())["params"] for p in sorted(exp.glob("[0-9]*/.mrl"))}


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


def test_reproduce_pins_the_source_commit_diff_run_block_and_params(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_cfg(project, run={"command": "cat {{codeDir}}/train.py > out.txt; echo {{lr}} >> out.txt"})
    commit_all(project, "run command")
    (project / "train.py").write_text("print('uncommitted')\n")
    assert main(["new", "-nc", "sloppy"]) == 0
    assert main(["makebatch"]) == 0
    (project / OUT / "0001" / ".mrl.cfg").write_text(json.dumps({"run": {"jobs": 2}}))
    git(project, "checkout", "train.py")
    (project / "train.py").write_text("print('later')\n")
    set_cfg(project, run={"command": "echo something else > out.txt"})
    commit_all(project, "later work")
    capsys.readouterr()
    assert main(["reproduce", "1", "2-3"]) == 0
    out = capsys.readouterr().out
    assert "0002 reproduces 2 sub-experiment(s) of 0001 (002, 003)" in out and "mrl diff 1 2" in out
    src, rec = record(project, "0001"), record(project, "0002")
    assert rec["gitHash"] == src["gitHash"] and rec["dirty"] is True
    assert rec["run"] == src["run"]
    assert rec["reproduces"] == {"expId": 1, "subExpIds": [2, 3], "gitHash": src["gitHash"]}
    exp2 = project / OUT / "0002"
    assert (exp2 / ".mrl.diff").read_bytes() == (project / OUT / "0001" / ".mrl.diff").read_bytes()
    assert (exp2 / "code" / "train.py").read_text() == "print('uncommitted')\n"
    assert (exp2 / ".mrl.cfg").read_text() == json.dumps({"run": {"jobs": 2}})
    assert params_of(project, "0002") == {n: p for n, p in params_of(project, "0001").items() if n in ("002", "003")}
    assert main(["verify", "2"]) == 0
    assert main(["run", "2"]) == 0
    assert (exp2 / "003" / "out.txt").read_text() == "print('uncommitted')\n0.01\n"


def test_reproduce_of_a_commit_the_repository_lacks_is_one_error(project: Path) -> None:
    assert main(["new"]) == 0
    assert main(["makebatch"]) == 0
    rec = record(project, "0001")
    rec["gitHash"] = "0" * 40
    (project / OUT / "0001" / ".mrl").write_text(json.dumps(rec))
    r = run_mrl("reproduce", "1", cwd=project)
    assert r.returncode == 1 and r.stderr.startswith("mrl: error: commit 000000000000 that 0001 pinned is not in")
    assert not (project / OUT / "0002").exists()


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


def test_reproduce_renders_the_sources_own_template_after_the_project_renamed_it(project: Path) -> None:
    """The project's confTemplFile changed since (conf.lua -> b.yaml): a reproduction still
    copies and renders the file the source rendered, never the project's new one, and its
    EXPDIR/.mrl.cfg says so (so --extend and -replace render it too)."""
    set_cfg(project, run={"command": "cat conf.lua > out.txt"})
    commit_all(project, "run command")
    assert main(["new", "one"]) == 0
    assert main(["makebatch"]) == 0
    src = params_of(project, "0001")
    git(project, "rm", "-q", "conf.lua")
    (project / "b.yaml").write_text("lr: {{lr}}\nnew: 1\n# MRL:grid['lr'] = [0.3]\n")
    set_cfg(project, confTemplFile="b.yaml", copyFiles=["b.yaml"], run={"command": "cat b.yaml > out.txt"})
    commit_all(project, "conf.lua became b.yaml")
    r = run_mrl("reproduce", "1", "2-3", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "copied conf.lua from 0001" in r.stdout and "b.yaml" not in r.stdout
    assert "conf.lua" in r.stderr and "confTemplFile" in r.stderr  # one line says why
    exp2 = project / OUT / "0002"
    assert not (exp2 / "b.yaml").exists() and not (exp2 / "002" / "b.yaml").exists()
    assert (exp2 / "002" / "conf.lua").read_text() == (project / OUT / "0001" / "002" / "conf.lua").read_text()
    assert record(project, "0002")["copied"]["conf.lua"] == "0001"
    assert params_of(project, "0002") == {n: src[n] for n in ("002", "003")}
    assert json.loads((exp2 / ".mrl.cfg").read_text())["confTemplFile"] == ["conf.lua"]
    assert run_mrl("makebatch", "2", "--extend", cwd=project, check=True).returncode == 0
    made = sorted(map(str, params_of(project, "0002").values()))
    assert made == sorted(map(str, src.values()))  # the source's grid, not b.yaml's
    assert run_mrl("run", "2", cwd=project).returncode == 0
    assert (exp2 / "003" / "out.txt").read_text() == (exp2 / "003" / "conf.lua").read_text()


def test_reproduce_of_an_experiment_made_with_cp_no_and_a_hand_placed_template_writes_no_cfg(project: Path) -> None:
    set_cfg(project, run={"command": "true"})
    commit_all(project, "run command")
    assert main(["new", "-cp", "no", "by hand"]) == 0
    (project / OUT / "0001" / "conf.lua").write_text("lr = {{lr}}\n-- MRL:grid['lr'] = [1, 2]\n")
    assert main(["makebatch"]) == 0
    r = run_mrl("reproduce", "1", cwd=project)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    assert not (project / OUT / "0002" / ".mrl.cfg").exists()
    assert (project / OUT / "0002" / "002" / "conf.lua").read_text() == "lr = 2\n"


def test_reproduce_says_when_the_sources_template_was_edited_after_its_makebatch(project: Path) -> None:
    """Same params, but the source's EXPDIR template changed since it rendered: the
    reproduction's files are not what the source ran, and one line says so."""
    set_cfg(project, run={"command": "true"})
    commit_all(project, "run command")
    assert main(["new", "one"]) == 0
    assert main(["makebatch"]) == 0
    tpl = project / OUT / "0001" / "conf.lua"
    tpl.write_text(tpl.read_text().replace("learning_rate", "lr"))
    r = run_mrl("reproduce", "1", "2-3", cwd=project)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if "rendered file(s) differ" in line]
    assert lines == [
        "mrl: warning: 2 rendered file(s) differ from 0001's (002/conf.lua, 003/conf.lua): 0001's template or "
        "its sub-experiments' files were edited after its makebatch, so its params render otherwise now; "
        "`mrl diff 1/2 2/2` shows how"
    ], r.stderr


def test_reproduce_of_a_template_naming_its_own_folder_is_no_difference(project: Path) -> None:
    set_cfg(project, run={"command": "true"})
    commit_all(project, "run command")
    assert main(["new", "-cp", "no", "one"]) == 0
    (project / OUT / "0001" / "conf.lua").write_text("out = '{{subExpDir}}/x'\n-- MRL:grid['lr'] = [1, 2]\n")
    (project / "conf.lua").unlink()
    set_cfg(project, copyFiles=[])
    commit_all(project, "no conf.lua")
    assert main(["makebatch", "1"]) == 0
    r = run_mrl("reproduce", "1", cwd=project)
    assert r.returncode == 0 and "differ" not in r.stderr, r.stderr
