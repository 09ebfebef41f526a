"""Params named like a column the table makes: `param.<name>`, through every view.

A batch made by an earlier mrl (or the original metarunlog), before makebatch refused the
names, may have params `id`, `state`, `duration`, `exp`: the table's own column took their
place (`id` replaced the sub-experiment ids, `state` read done). A param `loss_std` lost its
column to the aggregate's std of `loss`. Both now show as `param.<name>`, in `mrl table`
(every format, `--where`, `--sort`, `--aggregate --by`), `mrl analyze`'s report and
comparison page, and `metarunlog.api`; `makebatch --extend` keeps such a batch's names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from metarunlog import api
from metarunlog.project import Project
from tests.helpers.records import done, make_exp, old_batch_exp, params_of
from tests.helpers.repo import run_mrl

TEMPLATE = (
    "id = {{id}}\nseed = {{seed}}\nstate = '{{state}}'\n"
    "-- MRL:grid['id'] = [7, 9]\n-- MRL:grid['seed'] = [0, 1]\n-- MRL:defaults = {'state': 'warm', 'exp': 'x'}\n"
)


def old_exp(project: Path):  # type: ignore[no-untyped-def]
    subs = [
        {
            "params": {"state": "warm", "exp": "x", "id": i, "seed": s},
            "status": done(),
            "metrics": {"loss": i + s / 10},
            "jsonl": [{"step": 0, "loss": i + s / 10}],
        }
        for i in (7, 9)
        for s in (0, 1)
    ]
    return old_batch_exp(project, TEMPLATE, subs, {"id": [7, 9], "seed": [0, 1]}, {"state": "warm", "exp": "x"})


def table(project: Path, *args: str) -> str:
    proc = run_mrl("table", *args, cwd=project)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def rows(project: Path, *args: str) -> list[dict]:
    return json.loads(table(project, *args, "--json"))  # type: ignore[no-any-return]


def test_an_older_batchs_param_named_like_a_table_column_is_param_name_in_every_format(project: Path) -> None:
    # before: `id` showed 7, 7, 9, 9 instead of 001..004 (and --json lost the folder ids),
    # `state` read done where the param was warm
    old_exp(project)
    got = rows(project)
    assert [list(r) for r in got] == [["id", "param.id", "seed", "state", "duration", "loss"]] * 4
    assert [(r["id"], r["param.id"], r["state"]) for r in got] == [
        ("001", 7, "done"),
        ("002", 7, "done"),
        ("003", 9, "done"),
        ("004", 9, "done"),
    ]
    every = rows(project, "--all-params")
    assert [(r["param.state"], r["param.exp"], r["state"]) for r in every] == [("warm", "x", "done")] * 4
    header = ["id", "param.id", "seed", "state", "duration", "loss"]
    assert table(project).splitlines()[0].split() == header
    assert table(project, "--csv").splitlines()[0] == ",".join(header)
    assert table(project, "--tsv").splitlines()[0] == "\t".join(header)
    assert table(project, "--markdown").splitlines()[0] == "| " + " | ".join(header) + " |"
    assert table(project, "--csv").splitlines()[3].startswith("003,9,0,done,")


def test_where_sort_and_aggregate_name_it_param_name(project: Path) -> None:
    exp = old_exp(project)
    for where in ("param.id == 9", 'col["param.id"] == 9'):
        assert [r["id"] for r in rows(project, "--where", where)] == ["003", "004"], where
    assert [r["id"] for r in rows(project, "--where", "id == 3")] == ["003"]  # the folder, as always
    both = rows(project, "--all-params", "--where", "param.state == 'warm' and state == 'done'")
    assert len(both) == 4
    assert [r["param.id"] for r in rows(project, "--sort", "-param.id")] == [9, 9, 7, 7]
    agg = rows(project, "--aggregate")
    assert [(r["param.id"], r["n"], r["loss"]) for r in agg] == [(7, 2, 7.05), (9, 2, 9.05)]
    assert [list(r) for r in agg] == [["param.id", "n", "loss", "loss_std"]] * 2
    for by in ("id", "param.id"):
        assert rows(project, "--aggregate", "--by", by) == agg, by
    assert table(project, "--aggregate").splitlines()[0].split() == ["param.id", "n", "loss", "loss_std"]
    assert [(r["exp"], r["n"]) for r in rows(project, "--aggregate", "--by", "exp")] == [(exp.name, 4)]
    assert [(r["param.exp"], r["n"]) for r in rows(project, "--aggregate", "--by", "param.exp")] == [("x", 4)]
    make_exp(project, [{"params": {"lr": 0.1}, "status": done(), "metrics": {"loss": 1.0}}])
    many = rows(project, "--all", "--all-params")
    assert [(r["exp"], r["id"], r["param.exp"]) for r in many][-2:] == [(exp.name, "004", "x"), ("0002", "001", None)]


def test_the_api_gives_the_same_columns(project: Path) -> None:
    exp = old_exp(project)
    df = api.load_table(exp.id)
    assert list(df.index) == ["001", "002", "003", "004"]
    assert list(df["param.id"]) == [7, 7, 9, 9] and set(df["state"]) == {"done"}
    assert list(api.load_table(exp.id, where="param.id == 7").index) == ["001", "002"]
    agg = api.load_table(exp.id, aggregate=True, by="id")
    assert list(agg["param.id"]) == [7, 9] and list(agg["n"]) == [2, 2]
    assert list(api.load_table(exp.id, all_params=True)["param.exp"]) == ["x"] * 4
    curves = api.load_metrics(exp.id, with_params=True)  # `id` was overwritten by the param
    assert list(curves["id"]) == ["001", "002", "003", "004"] and list(curves["param.id"]) == [7, 7, 9, 9]


def test_the_report_and_the_comparison_page_show_it_as_param_name(project: Path) -> None:
    exp = old_exp(project)
    proc = run_mrl("analyze", cwd=project)
    assert proc.returncode == 0, proc.stderr
    page = (exp.dir / "analysis" / "index.html").read_text()
    section = page[page.index('<section id="table">') : page.index("</section>", page.index('<section id="table">'))]
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", section)
    assert heads[:8] == ["id", "param.id", "seed", "param.state", "param.exp", "state", "duration", "loss"]
    assert heads[heads.index("param.id", 2) :][:3] == ["param.id", "n", "loss"]  # the aggregated view
    assert re.findall(r'<a href="#(\d+)">', section) == ["001", "002", "003", "004"]
    assert section.count("state-done") == 4
    make_exp(project, [{"params": {"lr": 0.1}, "status": done(), "metrics": {"loss": 1.0}}])
    proc = run_mrl("analyze", "1", "2", cwd=project)
    assert proc.returncode == 0, proc.stderr
    cmp = Path(proc.stdout.strip().splitlines()[-1]).read_text()
    section = cmp[cmp.index('<section id="table">') : cmp.index('<section id="plots">')]
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", section)
    assert heads[:2] == ["exp", "id"] and {"param.id", "param.exp", "param.state"} <= set(heads)
    assert heads.count("exp") == heads.count("id") == heads.count("state") == 1


def test_extend_keeps_an_older_batchs_names_and_refuses_a_new_one(project: Path) -> None:
    # before: `makebatch --extend` of such a batch was refused by name: it could not grow
    exp = old_exp(project)
    (exp.dir / "conf.lua").write_text(TEMPLATE.replace("[7, 9]", "[7, 9, 11]"))
    proc = run_mrl("makebatch", "--extend", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "made 2 sub-experiment(s) 005..006" in proc.stdout
    params = params_of(project, exp.name)
    assert [params[n]["id"] for n in ("005", "006")] == [11, 11] and params["005"]["state"] == "warm"
    assert (exp.dir / "005" / "conf.lua").read_text().startswith("id = 11\n")
    assert [r["param.id"] for r in rows(project)][-2:] == [11, 11]
    new = run_mrl("makebatch", "--extend", "--grid", "duration=1,2", cwd=project)
    assert new.returncode == 1 and "Traceback" not in new.stderr
    assert new.stderr == (
        "mrl: error: --grid: param 'duration' has the name of a column mrl table makes (exp, id, state, duration):"
        " rename it\n"
    )
    replaced = run_mrl("makebatch", "-replace", cwd=project)  # a new batch: the names are refused
    assert replaced.returncode == 1 and "conf.lua: line 4: param 'id' has the name of a column" in replaced.stderr
    assert sorted(params_of(project, exp.name)) == ["001", "002", "003", "004", "005", "006"]


def test_a_param_named_like_a_metrics_std_or_best_column_is_param_name_beside_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--aggregate` of a param `loss_std` beside a metric `loss`: one column for the two, the
    # std written over the param (or the param over the std); `loss_best` the same with --summary both
    from metarunlog.report import build_report
    from metarunlog.report.table import aggregated_view

    subs = [
        {"params": {"loss_std": w, "seed": s}, "status": done(), "metrics": {"loss": w * (1 + s)}}
        for w in (0.5, 2.0)
        for s in (0, 1, 2)
    ]
    exp = make_exp(project, subs)
    agg = rows(project, "--aggregate")
    assert [list(r) for r in agg] == [["param.loss_std", "n", "loss", "loss_std"]] * 2
    assert [(r["param.loss_std"], r["loss"]) for r in agg] == [(0.5, 1.0), (2.0, 4.0)]
    assert [r["loss_std"] for r in agg] == [pytest.approx(0.40824829), pytest.approx(1.63299316)]
    for by in ("loss_std", "param.loss_std"):
        assert rows(project, "--aggregate", "--by", by) == agg, by
    assert [list(r)[1] for r in rows(project)] == ["loss_std"] * 6  # no std column: its own name
    rep = build_report(Project.find(project).load_exp(str(exp.id)), project, exp.dir / "analysis")
    view = aggregated_view(rep)
    assert view.columns[:3] == ["param.loss_std", "n", "loss"]
    assert [row[0][0] for row in view.rows] == ["0.5", "2"]
    best = make_exp(
        project, [{"params": {"loss_best": b}, "status": done(), "jsonl": [{"step": 0, "loss": b}]} for b in (1, 2)]
    )
    got = rows(project, str(best.id), "--summary", "both")
    assert [(r["param.loss_best"], r["loss_best"]) for r in got] == [(1, 1), (2, 2)]
    assert list(got[0]) == ["id", "param.loss_best", "state", "duration", "loss", "loss_best", "loss_best_step"]


def test_a_dry_run_of_an_older_batch_previews_its_extend_not_a_replace_that_refuses_its_names(project: Path) -> None:
    # before: a bare `makebatch --dry-run` previewed as -replace would, so it refused the
    # batch's own `id` param, though --extend (which keeps it) would add 2
    exp = old_exp(project)
    (exp.dir / "conf.lua").write_text(TEMPLATE.replace("[7, 9]", "[7, 9, 11]"))
    replaced = run_mrl("makebatch", "-replace", cwd=project)
    assert replaced.returncode == 1
    assert run_mrl("makebatch", "-replace", "--dry-run", cwd=project).stderr == replaced.stderr
    dry = run_mrl("makebatch", "--dry-run", cwd=project)
    assert dry.returncode == 0, dry.stderr
    head = dry.stdout.splitlines()[0]
    assert head.startswith(
        f"would make 2 sub-experiment(s) 005..006 in {exp.dir} (kept the 4 existing); that is what --extend would do "
        f"(-replace would refuse: {replaced.stderr.removeprefix('mrl: error: ').rstrip()}); "
        f"without -replace or --extend, makebatch refuses: {exp.dir} is already expanded (4 sub-experiment(s))"
    )
    table = [line.split() for line in dry.stdout.splitlines()[1:]]
    assert [dict(zip(table[0], r, strict=True))["id"] for r in table[1:]] == ["11", "11"]
    assert sorted(params_of(project, exp.name)) == ["001", "002", "003", "004"]
    extended = run_mrl("makebatch", "--extend", cwd=project)
    assert extended.returncode == 0 and "made 2 sub-experiment(s) 005..006" in extended.stdout
