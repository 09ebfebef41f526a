"""Selections: `all`, `3`, `1,4-6`, `EXP/SUB`, sub-experiment folders, the folder you are in."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from metarunlog import selection
from metarunlog.errors import MrlError
from metarunlog.project import Project
from tests.backends.contract import make_experiment
from tests.helpers.repo import run_mrl


def ran(exp_dir: Path) -> list[str]:
    return sorted(p.parent.name for p in exp_dir.glob("*/.mrl.status"))


@pytest.fixture
def two_exps(project: Path) -> tuple[Path, Path]:
    """Experiment 0001 and 0002, each with sub-experiments 001-004 running `true`."""
    one = make_experiment(project, [{"x": i} for i in range(1, 5)], "true").dir
    two = make_experiment(project, [{"x": i} for i in range(1, 5)], "true").dir
    return one, two


def test_ranges_are_kept_as_ranges_merged_and_sorted() -> None:
    assert selection.parse("all") is None and selection.parse(None) is None
    assert selection.parse("7,1-3,2-5") == [(1, 5), (7, 7)]
    assert selection.parse("1-99999999999") == [(1, 99999999999)]
    with pytest.raises(MrlError, match="write it low-high"):
        selection.parse("5-2")


def test_a_range_typo_costs_memory_for_the_experiment_not_for_the_range(project: Path) -> None:
    exp = make_experiment(project, [{"x": i} for i in range(1, 10)], "true")
    subs = exp.sub_experiments()
    tracemalloc.start()
    try:
        for typo in ("1-10000000", "1-99999999999"):
            with pytest.raises(MrlError) as e:
                selection.pick(subs, typo)
            assert f"no sub-experiment 10-{typo.split('-')[1]} in experiment {exp.name} (it has 1-9)" in str(e.value)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000
    assert [s.id for s in selection.pick(subs, "2-4,8")] == [2, 3, 4, 8]


def test_missing_ids_are_named_as_ranges_and_what_exists_is_shown(project: Path) -> None:
    exp = make_experiment(project, [{"x": i} for i in range(1, 10)], "true")
    (exp.dir / "005" / ".mrl").unlink()
    (exp.dir / "005").rmdir()
    with pytest.raises(MrlError) as e:
        selection.pick(exp.sub_experiments(), "3-6,12")
    assert f"no sub-experiment 5, 12 in experiment {exp.name} (it has 1-4, 6-9)" in str(e.value)


def test_a_range_typo_on_the_command_line_is_one_error_line(two_exps: tuple[Path, Path], project: Path) -> None:
    r = run_mrl("run", "1-99999999999", cwd=project)
    assert r.returncode == 1
    assert r.stderr.startswith("mrl: error: no sub-experiment 5-99999999999") and r.stderr.count("\n") == 1
    assert ran(two_exps[1]) == []


def test_exp_slash_selection_runs_those_sub_experiments_of_that_experiment(
    two_exps: tuple[Path, Path], project: Path
) -> None:
    one, two = two_exps
    assert run_mrl("run", "1/3", cwd=project).returncode == 0
    assert ran(one) == ["003"] and ran(two) == []
    assert run_mrl("run", "last/1-2", cwd=project).returncode == 0
    assert ran(two) == ["001", "002"]
    r = run_mrl("status", "2/1-3", "--json", cwd=project)
    assert r.returncode == 0
    assert [row["id"] for row in json.loads(r.stdout)] == [1, 2, 3]
    r = run_mrl("run", "1/3", "4", cwd=project)
    assert r.returncode == 1 and "already names the sub-experiments" in r.stderr


def test_the_path_of_a_sub_experiment_folder_is_a_selection(two_exps: tuple[Path, Path], project: Path) -> None:
    one, _ = two_exps
    assert run_mrl("run", "output/0001/002", cwd=project).returncode == 0
    assert ran(one) == ["002"]
    r = run_mrl("status", str(one / "004"), "--json", cwd=project)
    assert [row["id"] for row in json.loads(r.stdout)] == [4]
    assert run_mrl("run", str(one), "3", cwd=project).returncode == 0  # an experiment's path, then SELECTION
    assert ran(one) == ["002", "003"]


def test_inside_a_sub_experiment_folder_a_command_defaults_to_it(two_exps: tuple[Path, Path]) -> None:
    one, two = two_exps
    r = run_mrl("run", cwd=one / "003")
    assert r.returncode == 0, r.stderr
    assert ran(one) == ["003"] and ran(two) == []
    r = run_mrl("status", "--json", cwd=one / "003")
    assert [row["id"] for row in json.loads(r.stdout)] == [3]
    assert run_mrl("run", "1,2", cwd=one / "003").returncode == 0  # a selection of this experiment
    assert ran(one) == ["001", "002", "003"]


def test_inside_a_sub_experiment_folder_info_and_diff_default_to_it_too(two_exps: tuple[Path, Path]) -> None:
    """As run and status: `cd output/0001/003 && mrl info` showed the experiment, and
    `mrl diff . ../004` was refused ("this command takes an experiment"). `mrl table` stays
    the whole experiment there (docs/table.md: a table is for comparing)."""
    one, _ = two_exps
    r = run_mrl("table", "--json", cwd=one / "003")
    assert r.returncode == 0, r.stderr
    assert [row["id"] for row in json.loads(r.stdout)] == ["001", "002", "003", "004"]
    r = run_mrl("info", "--json", cwd=one / "003")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["path"] == str(one / "003")
    r = run_mrl("diff", ".", "../004", cwd=one / "003")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("mrl diff 0001/003 0001/004\n")
    r = run_mrl("info", "--json", cwd=one)  # in the experiment's own folder: the experiment
    assert json.loads(r.stdout)["path"] == str(one)


def test_a_lone_number_is_an_experiment_and_says_so_inside_another(two_exps: tuple[Path, Path]) -> None:
    one, two = two_exps
    r = run_mrl("run", "1", cwd=two / "002")
    assert r.returncode == 0
    assert ran(one) == ["001", "002", "003", "004"] and ran(two) == []
    notes = [line for line in r.stderr.splitlines() if "acts on experiment" in line]
    assert len(notes) == 1
    assert "run acts on experiment 0001, not on 0002 which you are in" in notes[0] and "2/1" in notes[0]
    r = run_mrl("status", "2", cwd=two)
    assert "acts on experiment" not in r.stderr  # the experiment you are in: nothing to say


def test_resolve_targets_without_a_project_folder_default_is_the_newest(
    two_exps: tuple[Path, Path], project: Path
) -> None:
    p = Project.find(project)
    assert selection.resolve_targets(p, None, None, cwd=project) == (2, "all")
    assert selection.resolve_targets(p, None, "1,3", cwd=two_exps[0] / "002") == (1, "1,3")
    assert selection.resolve_targets(p, "0001/all", None, cwd=project) == (1, "all")


def test_spec_of_names_ids_as_a_selection_cut_after_limit_ranges() -> None:
    assert selection.spec_of([5, 1, 2, 3, 3, 7, 8]) == "1-3,5,7-8"
    assert selection.parse(selection.spec_of([5, 1, 2, 3, 7, 8])) == [(1, 3), (5, 5), (7, 8)]
    assert selection.spec_of(range(1, 30, 2), limit=3) == "1,3,5 and 12 more"
    assert selection.spec_of([]) == ""
