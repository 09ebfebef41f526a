"""metarunlog/commands/reproduce.py: `mrl reproduce` makes an experiment again as it was pinned:
its commit and .mrl.diff (never HEAD or the working tree), its run block and EXPDIR/.mrl.cfg,
the config files it rendered, and its sub-experiments' params and ids (issue 12). What it
shares with `mrl rerun` (commands/_derive.py) is in tests/commands/test_derive.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from metarunlog.commands.reproduce import reproduce
from metarunlog.errors import MrlError
from metarunlog.main import main
from metarunlog.project import Project
from tests.helpers.records import params_of
from tests.helpers.records import record_of as record
from tests.helpers.repo import commit_all, git, run_mrl, set_cfg

OUT = Path("output")


def made(project: Path, *args: str) -> None:
    """Experiment 0001 of the 3x3 conf.lua grid, made and expanded (`mrl new ARGS`, makebatch)."""
    set_cfg(project, run={"command": "cat conf.lua > out.txt"})
    commit_all(project, "run command")
    assert main(["new", *args]) == 0
    assert main(["makebatch"]) == 0


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


def test_reproduce_never_looks_at_the_working_tree_or_head(project: Path) -> None:
    made(project, "first")
    pinned = (project / "train.py").read_text()
    (project / "train.py").write_text("print('committed later')\n")
    commit_all(project, "later")
    (project / "train.py").write_text("print('not even committed')\n")  # a dirty tree is fine here
    r = run_mrl("reproduce", "1", cwd=project)
    assert r.returncode == 0, r.stderr
    assert (project / OUT / "0002" / "code" / "train.py").read_text() == pinned
    assert record(project, "0002")["gitHash"] == record(project, "0001")["gitHash"]
    assert record(project, "0002")["dirty"] is False


def test_the_description_says_what_it_reproduces_unless_one_is_given(project: Path) -> None:
    made(project, "lr sweep")
    res, _ = reproduce(Project.find(project), 1)
    assert res.exp.record.description == "reproduces 0001: lr sweep"
    res, _ = reproduce(Project.find(project), 1, "2", description="check the seed")
    assert res.exp.record.description == "check the seed" and res.names == ["002"]


def test_a_source_without_a_description_is_named_alone(project: Path) -> None:
    made(project)
    res, _ = reproduce(Project.find(project), 1)
    assert res.exp.record.description == "reproduces 0001"


def test_a_source_without_a_pinned_run_block_takes_the_projects_and_says_so(project: Path) -> None:
    made(project, "old")
    rec = record(project, "0001")
    del rec["run"]  # made before mrl pinned run blocks
    (project / OUT / "0001" / ".mrl").write_text(json.dumps(rec))
    set_cfg(project, run={"command": "echo now > out.txt"})
    commit_all(project, "the project's block now")
    res, notes = reproduce(Project.find(project), 1)
    assert any("0001 has no pinned run block" in n and "pins the project's current one" in n for n in notes), notes
    assert record(project, res.exp.name)["run"]["command"] == "echo now > out.txt"


def test_a_notclean_source_whose_diff_is_gone_cannot_be_rebuilt_and_nothing_is_made(project: Path) -> None:
    set_cfg(project, run={"command": "true"})
    commit_all(project, "run command")
    (project / "train.py").write_text("print('uncommitted')\n")
    assert main(["new", "-nc", "sloppy"]) == 0 and main(["makebatch"]) == 0
    (project / OUT / "0001" / ".mrl.diff").unlink()
    last = os.readlink(project / "last")
    r = run_mrl("reproduce", "1", cwd=project)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "0001 was made with --notclean but" in r.stderr and ".mrl.diff is missing" in r.stderr
    assert not (project / OUT / "0002").exists() and os.readlink(project / "last") == last


def test_a_selection_naming_no_sub_experiment_is_one_error_and_makes_nothing(project: Path) -> None:
    made(project, "grid")
    with pytest.raises(MrlError):
        reproduce(Project.find(project), 1, "12")
    assert not (project / OUT / "0002").exists()


def test_a_source_whose_template_no_longer_renders_leaves_no_half_experiment(project: Path) -> None:
    made(project, "grid")
    (project / OUT / "0001" / "conf.lua").write_text("lr = {{ lr }} {{ undefined_now }}\n")
    r = run_mrl("reproduce", "1", cwd=project)
    assert r.returncode == 1 and r.stderr.startswith("mrl: error: ") and "undefined_now" in r.stderr, r.stderr
    assert not (project / OUT / "0002").exists()
    assert os.readlink(project / "last").endswith("0001")


def test_reproduce_of_an_experiment_without_sub_experiments_is_one_error(project: Path) -> None:
    set_cfg(project, run={"command": "true"})
    commit_all(project, "run command")
    assert main(["new", "empty"]) == 0
    r = run_mrl("reproduce", "1", cwd=project)
    assert r.returncode == 1 and "has no sub-experiments" in r.stderr
    assert not (project / OUT / "0002").exists()
