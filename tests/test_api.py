"""metarunlog/api.py: the documented Python API (load_experiment, load_table, load_results,
load_params, load_metrics) over real experiment folders; it never writes anything.

tests/test_results.py checks the DataFrames' columns for a grid; this file checks how an
experiment is named, which experiments a call reads, and that nothing is written."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path

import pytest

from metarunlog import api, jsonio
from metarunlog.errors import ConfigError, MrlError, NotAnExperiment
from metarunlog.experiment import Experiment
from metarunlog.records import Status
from metarunlog.states import JobState
from tests.backends.contract import make_experiment


def finished(exp: Experiment, metrics: list[dict[str, float]], lines: list[list[dict[str, float]]]) -> None:
    """Each sub-experiment done, with a metrics.json summary and metrics.jsonl lines."""
    for sub, summary, rows in zip(exp.sub_experiments(), metrics, lines, strict=True):
        sub.write_status(Status(state=JobState.DONE, exit_code=0, attempts=1, duration=3.0, backend="local"))
        jsonio.write_json(sub.dir / "metrics.json", summary)
        jsonio.write_text(sub.dir / "metrics.jsonl", "".join(f"{json.dumps(r)}\n" for r in rows))


@pytest.fixture
def two_exps(project: Path) -> tuple[Experiment, Experiment]:
    a = make_experiment(project, [{"lr": 0.1, "seed": 1}, {"lr": 0.2, "seed": 1}], "true")
    finished(a, [{"acc": 0.5}, {"acc": 0.7}], [[{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}], []])
    b = make_experiment(project, [{"lr": 0.3, "seed": 1}], "true")
    finished(b, [{"acc": 0.9}], [[{"step": 1, "loss": 0.5}]])
    return a, b


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_load_experiment_takes_an_id_a_padded_id_last_or_a_path(two_exps, project: Path) -> None:
    a, b = two_exps
    assert api.load_experiment().id == b.id
    assert api.load_experiment(a.id).dir == a.dir
    assert api.load_experiment(f"{a.id:04d}").dir == a.dir
    assert api.load_experiment(a.dir).id == a.id
    assert api.load_experiment(str(a.dir)).id == a.id
    assert api.load_experiment(Path(os.path.relpath(a.dir))).id == a.id


def test_load_experiment_from_anywhere_with_basedir_or_an_experiment_path(
    two_exps, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = two_exps
    monkeypatch.chdir(tmp_path)
    assert api.load_experiment(a.id, basedir=project).dir == a.dir
    assert api.load_experiment(a.dir).dir == a.dir  # the project found from the path itself
    with pytest.raises(ConfigError, match="no .mrl.cfg"):
        api.load_experiment(a.id)  # an id needs a project: none here


def test_basedir_may_start_with_a_tilde(two_exps, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, _ = two_exps
    monkeypatch.setenv("HOME", str(project.parent))
    assert api.load_experiment(a.id, basedir=f"~/{project.name}").dir == a.dir


def test_an_unknown_experiment_is_the_error_mrl_gives(two_exps) -> None:
    with pytest.raises(NotAnExperiment, match="no experiment 42"):
        api.load_table(42)


def test_load_table_of_several_experiments_has_an_exp_column(two_exps) -> None:
    a, b = two_exps
    df = api.load_table([a.id, b.id])
    assert list(df["exp"]) == [a.name, a.name, b.name] and list(df.columns)[0] == "exp"
    assert list(df.index) == ["001", "002", "001"] and df.index.name == "id"
    assert df.groupby("exp")["acc"].count().to_dict() == {a.name: 2, b.name: 1}
    assert list(df.reset_index().columns[:2]) == ["id", "exp"]
    assert sorted(df["acc"]) == [0.5, 0.7, 0.9]
    assert len(api.load_table("all")) == 3
    assert len(api.load_table([f"{a.id}-{b.id}"])) == 3
    assert len(api.load_table(f"{a.id}-{b.id}")) == 3  # a range string, as `mrl table 1-2` takes
    assert len(api.load_table(f"{a.id},{b.id}")) == 3


def test_load_table_of_a_tag_reads_only_the_tagged_experiments(two_exps, project: Path) -> None:
    a, b = two_exps
    b.write_record(dataclasses.replace(b.record, tags=["best"]))
    df = api.load_table(tag="best")
    assert len(df) == 1 and list(df["acc"]) == [0.9]
    assert len(api.load_table(tag=["best", "nothing-tagged-so"])) == 1


def test_load_results_gives_the_rows_and_nothing_is_written(two_exps, project: Path) -> None:
    a, _ = two_exps
    before = snapshot(project)
    tab = api.load_results(a.id)
    assert [r["acc"] for r in tab.rows] == [0.5, 0.7]
    assert "acc" in tab.columns and tab.errors == []
    api.load_table(a.id)
    api.load_metrics(a.id, with_params=True)
    api.load_params(a.id)
    assert snapshot(project) == before


def test_load_metrics_without_params_has_id_and_line_first(two_exps) -> None:
    a, _ = two_exps
    df = api.load_metrics(a.id)
    assert list(df.columns[:2]) == ["id", "line"]
    assert list(df["id"]) == ["001", "001"] and list(df["loss"]) == [2.0, 1.0]
    assert "lr" not in df.columns


def test_a_logged_metric_named_like_a_param_or_id_or_line_keeps_its_curve_as_metric_name(project: Path) -> None:
    # A script logging its learning-rate schedule as `lr` (and a key `id` or `line`): the
    # param's constant (or the frame's own id/line) replaced the logged values.
    exp = make_experiment(project, [{"lr": 0.1}, {"lr": 0.2}], "true")
    rows = [[{"step": s, "lr": lr * 0.5**s, "id": 7, "line": "x"} for s in range(3)] for lr in (0.1, 0.2)]
    finished(exp, [{}, {}], rows)
    df = api.load_metrics(exp.id, with_params=True)
    assert list(df["lr"]) == [0.1] * 3 + [0.2] * 3
    assert list(df["metric.lr"]) == [0.1, 0.05, 0.025, 0.2, 0.1, 0.05]
    assert list(df["id"]) == ["001"] * 3 + ["002"] * 3 and list(df["line"]) == [0, 1, 2] * 2
    assert list(df["metric.id"]) == [7] * 6 and list(df["metric.line"]) == ["x"] * 6
    plain = api.load_metrics(exp.id)
    assert list(plain["lr"]) == [0.1, 0.05, 0.025, 0.2, 0.1, 0.05] and "metric.lr" not in plain.columns


def test_load_metrics_of_an_experiment_without_curves_is_an_empty_frame_with_its_columns(project: Path) -> None:
    exp = make_experiment(project, [{"lr": 0.1}], "true")
    df = api.load_metrics(exp.id)
    assert df.empty and list(df.columns) == ["id", "line"]


def test_load_params_has_every_param_even_the_ones_that_do_not_vary(two_exps) -> None:
    a, _ = two_exps
    df = api.load_params(a.id)
    assert list(df.index) == ["001", "002"]
    assert df.loc["002", "lr"] == 0.2 and df.loc["001", "seed"] == 1


def test_the_api_is_what_its_module_exports() -> None:
    names = {"load_experiment", "load_table", "load_params", "load_metrics", "load_results", "MrlWarning"}
    assert set(api.__all__) == names
    assert all(callable(getattr(api, name)) for name in api.__all__)


def test_load_table_of_exp_slash_selection_keeps_those_sub_experiments(two_exps) -> None:
    a, b = two_exps
    assert list(api.load_table(f"{a.id}/2").index) == ["002"]
    assert list(api.load_table(a.subexp_dir(1)).index) == ["001"]  # a sub-experiment folder's path
    assert list(api.load_table(f"{a.id}/all").index) == ["001", "002"]
    df = api.load_table([f"{a.id}/2", b.id])
    assert list(zip(df["exp"], df.index, strict=True)) == [(a.name, "002"), (b.name, "001")]
    with pytest.raises(MrlError, match="no sub-experiment 7 in experiment"):
        api.load_table(f"{a.id}/7")


def test_a_copied_experiment_folder_given_to_the_api_gets_the_clis_message_with_its_hint(project: Path) -> None:
    # a copy in the project (`cp -a output/0001 backup/`): the CLI run from inside it said "(a
    # copy?) ... check the copy's code/ with `mrl verify`"; the API and `mrl table PATH` said
    # only "is not an experiment: give an id ..."
    import shutil

    from tests.helpers.repo import run_mrl

    make_experiment(project, [{"x": 1}], "true")
    copy = project / "backup" / "0001"
    shutil.copytree(project / "output" / "0001", copy, symlinks=True)
    from_inside = run_mrl("status", cwd=copy)
    assert from_inside.returncode == 1 and "(a copy?)" in from_inside.stderr
    said = from_inside.stderr.removeprefix("mrl: error: ").rstrip("\n")
    for load in (api.load_experiment, api.load_table, api.load_params):
        with pytest.raises(NotAnExperiment) as e:
            load(copy)
        assert str(e.value) == said, load
    with pytest.raises(NotAnExperiment, match=r"\(a copy\?\)"):
        api.load_table(str(copy / "001"))
    for args in (("table", str(copy)), ("info", str(copy))):
        r = run_mrl(*args, cwd=project)
        assert (r.returncode, r.stderr) == (1, from_inside.stderr), args


def test_load_table_by_takes_one_name_as_a_str_and_by_without_aggregate_is_the_clis_error(two_exps) -> None:
    # by="lr" was the params "l" and "r" (no such param: l); by= without aggregate was ignored
    a, b = two_exps
    df = api.load_table("all", aggregate=True, by="lr")
    assert sorted(df["lr"]) == [0.1, 0.2, 0.3] and list(df["n"]) == [1, 1, 1]
    assert list(api.load_table("all", aggregate=True, by=["exp"], over="lr")["exp"]) == [a.name, b.name]
    with pytest.raises(MrlError, match="--by and --over go with --aggregate"):
        api.load_table(a.id, by=["lr"])


def test_a_warning_mrl_would_print_is_a_python_warning_of_the_api(project: Path) -> None:
    # "sub-experiment folder ... has no .mrl (made by hand?)" went to the logger only: a
    # notebook or script without logging configured never saw it (the CLI prints it)
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT
    from tests.helpers.repo import run_mrl

    exp = make_experiment(project, [{"lr": 0.1}], "true")
    (exp.dir / "002").mkdir()  # made by hand: no .mrl
    said = f"sub-experiment folder {exp.dir / '002'} has no .mrl (made by hand?): its params are empty"
    for load in (api.load_table, api.load_params, api.load_results):
        with pytest.warns(api.MrlWarning) as caught:
            load(exp.id)
        assert [str(w.message) for w in caught if w.category is api.MrlWarning] == [said], load
        assert caught[0].filename == __file__  # at the caller's line, as warnings are
    with pytest.warns(api.MrlWarning):
        assert said in api.load_results(exp.id).warnings
    script = "import metarunlog\nprint(list(metarunlog.load_table(1).index))\n"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    run = functools.partial(subprocess.run, cwd=project, env=env, capture_output=True, text=True, timeout=60)
    proc = run([sys.executable, "-c", script])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "['001', '002']\n" and f"MrlWarning: {said}" in proc.stderr
    assert proc.stderr.count(said) == 1  # not also by logging's last resort
    strict = run([sys.executable, "-W", "error::metarunlog.errors.MrlWarning", "-c", script])
    assert strict.returncode == 1 and "MrlWarning" in strict.stderr  # filterable by its class
    cli = run_mrl("table", cwd=project)  # the command line: unchanged
    assert cli.returncode == 0 and cli.stderr.splitlines()[0] == f"mrl: warning: {said}"
    assert "MrlWarning" not in cli.stderr and cli.stderr.count(said) == 1


@pytest.mark.parametrize("fn", ["load_metrics", "load_params", "load_experiment"])
def test_a_list_where_one_experiment_is_taken_is_a_clear_error_not_a_pathlib_traceback(project: Path, fn: str) -> None:
    # load_metrics([2, 3]) was "TypeError: expected str, bytes or os.PathLike object, not list"
    make_experiment(project, [{"lr": 0.1}], "true")
    with pytest.raises(MrlError, match=r"one experiment is an id, 'last' or a path, not list \[1, 1\]: for several"):
        getattr(api, fn)([1, 1], basedir=project)


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        ({"exp": []}, "exp is an empty list"),
        ({"tag": 3}, "tag is a tag name or a list of them, not int 3"),
        ({"tag": ["a", 1]}, "tag is a tag name or a list of them"),
        ({"where": 5}, "where is an expression in a string"),
        ({"aggregate": True, "by": 3}, "by is a param name or a list of them, not int 3"),
        ({"aggregate": True, "over": [1]}, "over is a param name or a list of them, not list"),
    ],
    ids=["empty list", "int tag", "int in tags", "int where", "int by", "int in over"],
)
def test_wrong_arguments_to_load_table_are_an_mrl_error_saying_what_to_give(two_exps, kwargs, said: str) -> None:
    # an empty list read the newest experiment (as if nothing were given); an int tag or
    # where was a TypeError from deep inside ("'int' object is not iterable")
    with pytest.raises(MrlError, match=said):
        api.load_table(**kwargs)
