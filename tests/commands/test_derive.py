"""metarunlog/commands/_derive.py: what `mrl rerun` and `mrl reproduce` share: a plain `mrl new`
whose sub-experiments are rendered from its own templates with the source's params and ids,
the source's EXPDIR/.mrl.cfg carried over (with keys over it), and nothing left behind when
it fails. Through the commands: tests/commands/test_rerun.py and test_reproduce.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from metarunlog.commands._derive import derive, span
from metarunlog.errors import MrlError
from metarunlog.experiment import Experiment
from metarunlog.main import main
from metarunlog.project import Project
from tests.helpers.repo import commit_all, set_cfg


@pytest.fixture
def source(project: Path) -> Experiment:
    """Experiment 0001: the 3x3 conf.lua grid, with its own EXPDIR/.mrl.cfg."""
    set_cfg(project, run={"command": "true"})
    commit_all(project, "run command")
    assert main(["new", "grid"]) == 0 and main(["makebatch"]) == 0
    exp = Project.find(project).load_exp("1")
    (exp.dir / ".mrl.cfg").write_text(json.dumps({"run": {"jobs": 2}}))
    return exp


def derived_from(project: Path, source: Experiment, ids: list[int], **kw: object):  # type: ignore[no-untyped-def]
    subs = [s for s in source.sub_experiments() if s.id in ids]
    return derive(Project.find(project), source, subs, description="again", **kw)  # type: ignore[arg-type]


def test_the_new_experiment_keeps_the_sources_ids_and_params(project: Path, source: Experiment) -> None:
    res = derived_from(project, source, [2, 5, 9])
    assert res.names == ["002", "005", "009"] and res.exp.id == 2 and res.source is source
    new = {s.name: s.own_params for s in res.exp.sub_experiments()}
    old = {s.name: s.own_params for s in source.sub_experiments()}
    assert new == {n: old[n] for n in ("002", "005", "009")}
    assert (res.exp.dir / "005" / "conf.lua").read_text() == (source.dir / "005" / "conf.lua").read_text()
    assert os.readlink(project / "last").endswith("0002")


def test_the_sources_own_cfg_is_copied_and_recorded_as_copied(project: Path, source: Experiment) -> None:
    res = derived_from(project, source, [1])
    assert (res.exp.dir / ".mrl.cfg").read_text() == json.dumps({"run": {"jobs": 2}})
    assert res.made.copied[".mrl.cfg"] == "0001"
    assert res.exp.record.copied[".mrl.cfg"] == "0001"
    assert Project.find(project).load_exp("2").cfg["run"]["jobs"] == 2  # and it applies


def test_cfg_keys_go_over_the_sources_cfg(project: Path, source: Experiment) -> None:
    res = derived_from(project, source, [1], cfg_keys={"confTemplFile": ["conf.lua"]})
    assert json.loads((res.exp.dir / ".mrl.cfg").read_text()) == {"run": {"jobs": 2}, "confTemplFile": ["conf.lua"]}


def test_without_a_source_cfg_only_the_keys_are_written_and_nothing_is_said_copied(
    project: Path, source: Experiment
) -> None:
    (source.dir / ".mrl.cfg").unlink()
    res = derived_from(project, source, [1])
    assert not (res.exp.dir / ".mrl.cfg").exists() and ".mrl.cfg" not in res.exp.record.copied
    res = derived_from(project, source, [1], cfg_keys={"copyFiles": []})
    assert json.loads((res.exp.dir / ".mrl.cfg").read_text()) == {"copyFiles": []}
    assert ".mrl.cfg" not in res.exp.record.copied


def test_a_failure_after_new_removes_the_new_experiment_and_points_last_back(project: Path, source: Experiment) -> None:
    (source.dir / "conf.lua").write_text("lr = {{ lr }} {{ gone }}\n")  # the new one copies it, then renders
    with pytest.raises(MrlError, match="gone"):
        derived_from(project, source, [1, 2])
    assert Project.find(project).experiment_ids() == [1]
    assert not (project / "output" / "0002").exists()
    assert os.readlink(project / "last").endswith("0001")


@pytest.mark.parametrize(
    ("names", "text"),
    [
        ([], ""),
        (["001"], "001"),
        (["001", "004", "005"], "001, 004, 005"),
        ([f"{i:03d}" for i in range(1, 7)], "001, 002, 003, 004, 005, 006"),
        ([f"{i:03d}" for i in range(1, 10)], "001, 002, 003, 004, 005, 006 and 3 more"),
    ],
)
def test_span_names_a_few_then_counts_the_rest(names: list[str], text: str) -> None:
    assert span(names) == text
