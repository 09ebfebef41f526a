"""mrl table: formats, sorting, errors, and the table after a real makebatch + run."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

from metarunlog.main import main
from tests.helpers.records import done, grid_exp, make_exp
from tests.helpers.repo import commit_all, run_mrl, set_cfg


def table_out(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["table", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_default_table_is_aligned_text_with_a_header(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid_exp(project)
    code, out, err = table_out(capsys)
    lines = out.splitlines()
    assert code == 0 and err == ""
    assert lines[0].split() == ["id", "lr", "wd", "state", "duration", "loss", "acc", "test_acc"]
    assert len(lines) == 5
    assert lines[1].split()[:5] == ["001", "0.1", "1", "done", "10.0s"]
    # numbers are right-aligned under their header
    col = lines[0].index("loss") + len("loss")
    assert lines[1][col - 1] != " " and lines[3][col - 1 :].strip() == ""  # 003 has no loss


def test_csv_has_every_value_at_full_precision(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid_exp(project)
    code, out, _ = table_out(capsys, "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 4
    assert rows[0]["loss"] == repr(1.0 / 5 + 0.1) and rows[3]["state"] == "pending" and rows[3]["loss"] == ""


def test_tsv_uses_tabs(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid_exp(project)
    _, out, _ = table_out(capsys, "--tsv")
    assert out.splitlines()[0].split("\t")[:3] == ["id", "lr", "wd"]


def test_json_is_a_list_of_rows_and_nan_becomes_null(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_exp(project, [{"params": {"x": 1}, "jsonl": '{"loss": NaN}\n'}, {"params": {"x": 2}, "status": done()}])
    _, out, _ = table_out(capsys, "--json")
    rows = json.loads(out)
    assert rows[0] == {"id": "001", "x": 1, "state": "pending", "duration": None, "loss": None}
    assert rows[1]["state"] == "done" and rows[1]["duration"] == 12.5


def test_markdown_escapes_pipes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_exp(project, [{"params": {"name": "a|b"}}, {"params": {"name": "c"}}])
    _, out, _ = table_out(capsys, "--markdown")
    lines = out.splitlines()
    assert lines[0] == "| id | name | state | duration |"
    assert lines[1].startswith("|---|")
    assert lines[2] == "| 001 | a\\|b | pending |  |"


HOSTILE_NAMES = ["<b>bold</b>", "`touch x`", "*star*", "_under_", "[link](http://x)", "a&amp;b", "p|q", "back\\slash"]


def test_markdown_renders_every_value_as_itself_not_as_markup(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # before: `<b>bold</b>` rendered bold (inline HTML: a `<script>` ran where the table is
    # shown), backquotes became a code span, `*star*` italics: the table showed other values
    import html.parser

    import markdown

    make_exp(project, [{"params": {"name": n, "my_lr": i}} for i, n in enumerate(HOSTILE_NAMES)])
    _, out, _ = table_out(capsys, "--markdown")

    class Cells(html.parser.HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.cells: list[str] = []
            self.tags: list[str] = []
            self.inside = False

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag == "td":
                self.inside, self.cells = True, [*self.cells, ""]
            elif self.inside:
                self.tags.append(tag)

        def handle_endtag(self, tag: str) -> None:
            self.inside = self.inside and tag != "td"

        def handle_data(self, data: str) -> None:
            if self.inside:
                self.cells[-1] += data

    parser = Cells()
    parser.feed(markdown.markdown(out, extensions=["tables"]))
    shown = parser.cells[1::5]  # id, name, my_lr, state, duration
    assert shown == HOSTILE_NAMES and parser.tags == [], (shown, parser.tags)
    assert out.startswith("| id | name | my_lr |")  # `_` inside a word is not escaped: names stay readable


def test_all_params_shows_the_params_that_do_not_vary(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid_exp(project)
    _, out, _ = table_out(capsys, "--all-params", "--csv")
    assert out.splitlines()[0].startswith("id,lr,wd,epochs,state")


def test_sort_ascending_descending_and_empty_last(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid_exp(project)
    # durations: 001 10 s, 002 20 s, 003 12.5 s, 004 never ran
    assert [r["id"] for r in json.loads(table_out(capsys, "--json", "--sort", "duration")[1])] == [
        "001",
        "003",
        "002",
        "004",
    ]
    assert [r["id"] for r in json.loads(table_out(capsys, "--json", "--sort=-duration")[1])] == [
        "002",
        "003",
        "001",
        "004",
    ]
    assert [r["id"] for r in json.loads(table_out(capsys, "--json", "--sort", "duration", "--reverse")[1])] == [
        "002",
        "003",
        "001",
        "004",
    ]


def test_sorting_by_an_unknown_column_is_one_error_line_naming_the_columns(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid_exp(project)
    code, out, err = table_out(capsys, "--sort", "nope")
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [err.strip()]
    assert "no such column" in err and "lr, wd" in err
    code, _, err = table_out(capsys, "--sort", "epochs")
    assert code == 1 and "--all-params" in err


def test_an_experiment_without_sub_experiments_says_so(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["new", "-cp", "no", "empty"])
    code, out, _ = table_out(capsys)
    assert code == 0 and "no sub-experiments yet" in out
    assert table_out(capsys, "--json")[1] == "[]\n"
    assert table_out(capsys, "--csv")[1] == "id,state,duration\n"


def test_a_failing_user_metrics_function_still_prints_the_table_and_exits_1(project: Path) -> None:
    grid_exp(project)
    (project / "mrl_analyze.py").write_text(
        "def metrics(d):\n    if d.endswith('002'):\n        1 / 0\n    return {'extra': 7}\n"
    )
    proc = run_mrl("table", "--csv", cwd=project)
    assert proc.returncode == 1
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [r["extra"] for r in rows] == ["7", "", "7", "7"]
    assert proc.stderr.count("mrl: error:") == 1 and "ZeroDivisionError" in proc.stderr and "002" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_what_the_users_functions_print_goes_to_stderr_so_json_csv_and_the_report_path_stay_clean(
    project: Path,
) -> None:
    grid_exp(project)
    (project / "mrl_analyze.py").write_text(
        "def metrics(d):\n    print('reading', d)\n    return {'extra': 7}\n"
        "def over(expDir, outdir, ids, Dparams):\n    print('overview says hi')\n    return [('hi', 'text', None)]\n"
    )
    set_cfg(project, analysis_overview={"over": []})
    table = run_mrl("table", "--json", cwd=project)
    assert table.returncode == 0 and [r["extra"] for r in json.loads(table.stdout)] == [7, 7, 7, 7]
    assert table.stderr.count("reading ") == 4
    rows = list(csv.DictReader(io.StringIO(run_mrl("table", "--csv", cwd=project).stdout)))
    assert [r["id"] for r in rows] == ["001", "002", "003", "004"]
    diff = run_mrl("diff", "1/1", "1/2", "--json", cwd=project)
    assert diff.returncode == 0 and json.loads(diff.stdout)["metrics"]["extra"]["last"]["delta"] == 0
    report = run_mrl("analyze", cwd=project)
    assert report.returncode == 0 and "overview says hi" in report.stderr
    assert Path(report.stdout.strip()).is_file()  # `open $(mrl analyze)` gets the path only


def test_a_metrics_json_that_is_not_utf8_or_is_a_folder_is_reported_by_path_not_a_traceback(project: Path) -> None:
    # Bytes that are not UTF-8 (a crashed writer, a binary copied over it) raised
    # UnicodeDecodeError out of mrl table and mrl analyze --index: "internal error".
    exp = make_exp(project, [{"params": {"x": i}, "jsonl": [{"step": 0, "loss": i}]} for i in (1, 2, 3)])
    (exp.subexp_dir(1) / "metrics.json").write_bytes(b"\x00\xff\xfe{")
    (exp.subexp_dir(2) / "metrics.json").mkdir()
    table = run_mrl("table", "--json", cwd=project)
    assert table.returncode == 1 and "Traceback" not in table.stderr
    assert [r["loss"] for r in json.loads(table.stdout)] == [1, 2, 3]
    assert table.stderr.count("mrl: error:") == 1 and "001/metrics.json" in table.stderr
    index = run_mrl("analyze", "--index", cwd=project)
    assert index.returncode == 0 and "Traceback" not in index.stderr
    assert (project / "output" / "index.html").is_file()


def test_a_newest_folder_without_a_record_does_not_stop_all_ranges_or_the_index(project: Path) -> None:
    # An `mrl new` killed before its record, or a folder made by hand, as the newest
    # "experiment": --all, --tag, 2-3 and --index failed on it ("has no .mrl record") though
    # they skip such folders; only the default experiment is that folder.
    for _ in range(2):
        make_exp(project, [{"params": {"x": 1}, "jsonl": [{"step": 0, "loss": 0.5}]}])
    assert run_mrl("tag", "2", "+keep", cwd=project).returncode == 0
    (project / "output" / "0003").mkdir()
    for args in (["--all"], ["1-2"], ["--tag", "keep"]):
        proc = run_mrl("table", *args, "--json", cwd=project)
        assert proc.returncode == 0, (args, proc.stderr)
        assert {r["exp"] for r in json.loads(proc.stdout)} >= {"0002"}
    index = run_mrl("analyze", "--index", cwd=project)
    assert index.returncode == 0 and index.stdout.strip().endswith("index.html"), index.stderr
    assert run_mrl("analyze", "1-2", cwd=project).returncode == 0
    plain = run_mrl("table", cwd=project)  # the default experiment is the newest folder: said so
    assert plain.returncode == 1 and "0003 has no .mrl record" in plain.stderr


def test_one_corrupt_experiment_record_is_a_warning_line_naming_it_and_the_other_experiments_are_still_tabulated(
    project: Path,
) -> None:
    # `mrl table --all` over many experiments printed only the corrupt record's error; `mrl
    # table 2 3` named ones stopped at it too.
    for x in (1, 2, 3):
        make_exp(project, [{"params": {"x": x}, "jsonl": [{"step": 0, "loss": x / 10}]}])
    (project / "output" / "0002" / ".mrl").write_text("{broken")
    for args in (["--all"], ["1-3"], ["1", "2", "3"], ["2", "1", "3"], ["1,2", "3"]):
        proc = run_mrl("table", *args, "--json", cwd=project)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert [(r["exp"], r["loss"]) for r in json.loads(proc.stdout)] == [("0001", 0.1), ("0003", 0.3)]
        [line] = proc.stderr.splitlines()
        assert line.startswith("mrl: warning: left out experiment 0002: corrupt record ") and "0002/.mrl" in line
    alone = run_mrl("table", "2", cwd=project)  # the one experiment asked for: just the error
    assert alone.returncode == 1 and alone.stdout == ""
    assert alone.stderr.startswith("mrl: error: corrupt record ") and "output/0002/.mrl" in alone.stderr


def test_an_exp_that_names_no_experiment_among_several_is_left_out_with_a_warning(project: Path) -> None:
    for x in (1, 2):
        make_exp(project, [{"params": {"x": x}, "jsonl": [{"step": 0, "loss": x / 10}]}])
    (project / "output" / "0003").mkdir()  # an `mrl new` killed before its record
    for args, missing in ((["2", "9"], "9"), (["2", "3"], "3")):
        proc = run_mrl("table", *args, "--json", cwd=project)
        assert proc.returncode == 1 and [r["exp"] for r in json.loads(proc.stdout)] == ["0002"]
        [line] = proc.stderr.splitlines()
        assert line.startswith(f"mrl: warning: left out experiment {missing}: ")
    ranged = run_mrl("table", "1-3", "--json", cwd=project)  # a range skips a folder without its record
    assert ranged.returncode == 0 and ranged.stderr == ""
    assert [r["exp"] for r in json.loads(ranged.stdout)] == ["0001", "0002"]


def test_when_none_of_the_experiments_asked_for_can_be_read_it_is_one_error_line(project: Path) -> None:
    for x in (1, 2):
        make_exp(project, [{"params": {"x": x}, "jsonl": [{"step": 0, "loss": x / 10}]}])
    (project / "output" / "0001" / ".mrl").write_bytes(b"\xff\xfe")
    (project / "output" / "0002" / ".mrl.cfg").write_text("{not json")
    for command in ("table", "analyze"):
        proc = run_mrl(command, "1", "2", "9", "9", cwd=project)
        assert proc.returncode == 1 and proc.stdout == "" and "Traceback" not in proc.stderr
        [line] = proc.stderr.splitlines()
        assert line.startswith("mrl: error: none of the experiments asked for can be read: ")
        assert all(name in line for name in ("0001/.mrl", "0002/.mrl.cfg", "no experiment 9"))
        assert line.count("no experiment 9") == 1


def test_load_results_of_several_names_the_one_left_out_and_load_table_raises(project: Path) -> None:
    from metarunlog import api
    from metarunlog.errors import MrlError

    for x in (1, 2):
        make_exp(project, [{"params": {"x": x}, "jsonl": [{"step": 0, "loss": x / 10}]}])
    (project / "output" / "0001" / ".mrl").write_text("[]")
    tab = api.load_results([1, 2])
    assert [r["exp"] for r in tab.rows] == ["0002"]
    assert tab.errors[0].startswith("left out experiment 0001: corrupt record ")
    with pytest.raises(MrlError, match="left out experiment 0001"):
        api.load_table([1, 2])


def test_aggregating_huge_and_infinite_values_gives_inf_or_nan_not_a_traceback(project: Path) -> None:
    # math.fsum raised OverflowError on [1e308, 1e308] and ValueError on [inf, -inf]: a
    # diverged run (what seeds are averaged to find) made mrl table --aggregate an internal error.
    make_exp(
        project,
        [{"params": {"lr": lr, "seed": seed}, "metrics": {"loss": loss}}
         for lr, seed, loss in [(1, 1, 1e308), (1, 2, 1e308), (2, 1, math.inf), (2, 2, -math.inf), (3, 1, 0.5)]],
    )  # fmt: skip
    proc = run_mrl("table", "--aggregate", "--json", cwd=project)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    rows = json.loads(proc.stdout)
    assert [(r["lr"], r["n"]) for r in rows] == [(1, 2), (2, 2), (3, 1)]
    assert rows[0]["loss"] is None and rows[2]["loss"] == 0.5  # inf (null in JSON), and a plain mean


def test_numpy_and_array_values_from_the_users_metrics_are_numbers_in_every_format(project: Path) -> None:
    # np.float32/np.int64 from metrics() made `mrl table --json` an internal error ("float32 is
    # not JSON serializable") and were no numbers to --summary best or --aggregate.
    pytest.importorskip("numpy")
    make_exp(project, [{"params": {"lr": lr, "seed": seed}} for lr in (1, 2) for seed in (1, 2)])
    (project / "mrl_analyze.py").write_text(
        "import numpy as np\n"
        "def metrics(d):\n"
        "    k = int(d[-1])\n"
        "    rows = [{'step': np.int64(i), 'acc': np.float32(i / 4 * k), 'n_ok': np.int64(i)} for i in range(3)]\n"
        "    return rows + [{'step': 3, 'acc': np.float32(0.125), 'hist': np.arange(3)}]\n"
    )
    best = run_mrl("table", "--summary", "both", "--json", cwd=project)
    assert best.returncode == 0, best.stderr
    rows = json.loads(best.stdout)
    assert [(r["acc"], r["acc_best"], r["acc_best_step"]) for r in rows][:2] == [(0.125, 0.5, 2), (0.125, 1.0, 2)]
    assert rows[0]["hist"] == "[0 1 2]"  # an array is no metric number: shown as text, not a crash
    agg = json.loads(run_mrl("table", "--aggregate", "--summary", "best", "--json", cwd=project).stdout)
    assert [(r["lr"], r["n"], r["acc"]) for r in agg] == [(1, 2, 0.75), (2, 2, 1.75)]


def test_the_table_after_a_real_makebatch_and_run(project: Path) -> None:
    # conf.lua in the project fixture is a 3x3 grid over lr and wdecay.
    (project / "write_metrics.py").write_text(
        "import json, sys\nlr, wd = map(float, sys.argv[1:])\n"
        "for i in range(3):\n    print(json.dumps({'step': i, 'loss': lr * wd / (i + 1)}))\n"
    )
    set_cfg(project, run={"command": "python3 {{codeDir}}/write_metrics.py {{lr}} {{wdecay}} > metrics.jsonl"})
    commit_all(project, "metrics script")
    assert run_mrl("new", cwd=project).returncode == 0
    assert run_mrl("makebatch", cwd=project).returncode == 0
    proc = run_mrl("run", "-j", "2", cwd=project)
    assert proc.returncode == 0, proc.stderr
    proc = run_mrl("table", "--json", "--sort", "loss", cwd=project)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) == 9 and all(r["state"] == "done" and "loss" in r and "step" not in r for r in rows)
    assert rows[0]["lr"] == 0.01 and rows[0]["wdecay"] == 0.1
    assert rows[0]["loss"] == pytest.approx(0.01 * 0.1 / 3)
    assert all(isinstance(r["duration"], float) for r in rows)


def test_wide_unicode_names_and_values_keep_the_text_columns_aligned_on_a_terminal(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A metric logged as 损失 (each character two terminal cells wide) shifted every column
    # after it by its name's length: widths were counted in characters, not cells.
    import unicodedata

    def cells(s: str) -> int:
        return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)

    subs = [
        {"params": {"lr": lr, "opt": opt}, "status": done(), "jsonl": [{"step": 0, "损失": 0.25, "précision": 0.5}]}
        for lr, opt in ((0.1, "adam"), (0.2, "最速降下"))
    ]
    make_exp(project, subs)
    _, out, _ = table_out(capsys)
    lines = out.splitlines()
    ends = [[cells(line[: m.end()]) for m in __import__("re").finditer(r"\S+", line)] for line in lines]
    assert ends[0][-3:] == ends[1][-3:] == ends[2][-3:]  # opt, 损失, précision end at the same cell
    assert ends[1][-4] == ends[2][-4]  # the left-aligned opt column's values start at one cell


def test_a_sub_experiment_folder_made_by_hand_has_empty_params_and_a_warning(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = grid_exp(project)
    (exp.dir / "005").mkdir()  # no .mrl: the original's last commit took it as empty params
    code, out, err = table_out(capsys, "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["id"] for r in rows] == ["001", "002", "003", "004", "005"]
    assert rows[-1]["lr"] is None and rows[-1]["state"] == "pending"
    assert err.splitlines() == [
        f"mrl: warning: sub-experiment folder {exp.dir / '005'} has no .mrl (made by hand?): its params are empty"
    ]
    capsys.readouterr()
    assert main(["analyze"]) == 0
    assert "005" in capsys.readouterr().err
    assert 'id="005"' in (exp.dir / "analysis" / "index.html").read_text()


# -- a table that decides: --summary, --aggregate, several experiments, --where, tags ---------------


def seeds_exp(project: Path, shift: float = 0.0) -> Any:
    """lr x seed, with a metrics.jsonl curve per sub-experiment."""
    subs = []
    for lr in (0.1, 0.01):
        for seed in (1, 2, 3):
            final = lr * 10 + seed / 10 + shift
            curve = [
                {"step": s, "val_loss": final + (2 - s) * 0.5, "val_acc": 1 - final / 4 + s / 100} for s in range(3)
            ]
            subs.append({"params": {"lr": lr, "seed": seed, "wd": 0}, "status": done(), "jsonl": curve})
    return make_exp(project, subs)


def test_summary_best_shows_the_best_value_and_its_step(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seeds_exp(project)
    code, out, _ = table_out(capsys, "--json", "--summary", "best")
    rows = json.loads(out)
    assert code == 0 and rows[0]["val_loss"] == pytest.approx(1.1) and rows[0]["val_loss_step"] == 2
    assert rows[0]["val_acc"] == pytest.approx(1 - 1.1 / 4 + 0.02) and rows[0]["val_acc_step"] == 2


def test_best_cells_left_empty_for_metrics_without_a_goal_are_named_in_one_note(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # grad_norm (a curve) and final_entropy (a summary only) have no goal by name: their best
    # cells were empty and nothing said why (the issue: "nothing says why").
    curve = [{"step": s, "val_loss": 1.0 / (s + 1), "grad_norm": 2.0 + s, "phase": "warm"} for s in range(3)]
    make_exp(project, [{"params": {"lr": 0.1}, "status": done(), "jsonl": curve, "metrics": {"final_entropy": 1.2}}])
    note = (
        "mrl: note: no goal known for grad_norm, final_entropy: their best values are left empty;"
        ' say which way is better in .mrl.cfg, e.g. "metric_goals": {"grad_norm": "min"}'
    )
    for summary in ("best", "both"):
        code, out, err = table_out(capsys, "--summary", summary, "--json")
        row = json.loads(out)[0]
        assert code == 0 and row["val_loss" if summary == "best" else "val_loss_best"] == pytest.approx(1 / 3)
        assert err.splitlines() == [note]
    assert table_out(capsys, "--summary", "best", "--aggregate")[2].splitlines() == [note]
    assert table_out(capsys)[2] == ""  # last values need no goal
    set_cfg(project, metric_goals={"grad_norm": "min", "final_*": "min"})
    code, out, err = table_out(capsys, "--summary", "best", "--json")
    assert err == "" and json.loads(out)[0]["grad_norm"] == 2.0 and json.loads(out)[0]["final_entropy"] == 1.2


def test_metric_goals_in_the_config_and_in_mrl_analyze_turn_a_metric_around(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_cfg(project, metric_goals={"val_loss": "max"})
    commit_all(project)
    seeds_exp(project)
    (project / "mrl_analyze.py").write_text("metric_goals = {'val_acc': 'min'}\n")
    rows = json.loads(table_out(capsys, "--json", "--summary", "best")[1])
    assert rows[0]["val_loss_step"] == 0 and rows[0]["val_acc_step"] == 0


def test_aggregate_folds_the_seeds_into_mean_std_and_n_as_numpy_computes_them(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    seeds_exp(project)
    code, out, _ = table_out(capsys, "--json", "--aggregate")
    rows = json.loads(out)
    assert code == 0 and [(r["lr"], r["n"]) for r in rows] == [(0.1, 3), (0.01, 3)]
    for r in rows:
        finals = np.array([r["lr"] * 10 + seed / 10 for seed in (1, 2, 3)])
        assert r["val_loss"] == pytest.approx(np.mean(finals))
        assert r["val_loss_std"] == pytest.approx(np.std(finals))
        assert "seed" not in r and "id" not in r and "state" not in r


def test_a_logged_metric_named_like_a_column_mrl_derives_does_not_overwrite_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # RL scripts log `reward` with `reward_std`; others a `val_acc_best`. `--aggregate`'s
    # reward_std (the std over seeds) was replaced by the mean of the logged reward_std,
    # `--summary both`'s reward_best by the logged one: numbers that were never computed.
    import numpy as np

    rewards = {1: [0.1, 0.5, 0.3], 2: [0.2, 0.9, 0.4], 3: [0.6, 0.1, 0.2]}
    subs = [
        {
            "params": {"lr": 0.1, "seed": seed},
            "status": done(),
            "jsonl": [
                {
                    "step": s,
                    "reward": r,
                    "reward_std": 10.0 + seed,
                    "reward_best": 7.0,
                    "reward_step": 99,
                    "n_missing": 1,
                }
                for s, r in enumerate(curve)
            ],
        }
        for seed, curve in rewards.items()
    ]
    make_exp(project, subs)
    [row] = json.loads(table_out(capsys, "--aggregate", "--json")[1])
    lasts = [c[-1] for c in rewards.values()]
    assert row["n"] == 3 and row["reward"] == pytest.approx(np.mean(lasts))
    assert row["reward_std"] == pytest.approx(np.std(lasts))
    assert row["metric.reward_std"] == pytest.approx(12.0) and row["metric.reward_std_std"] == pytest.approx(
        np.std([11, 12, 13])
    )
    assert row["metric.n_missing"] == 1 and "n_missing" not in row  # no run lacks values
    rows = json.loads(table_out(capsys, "--summary", "both", "--json")[1])
    assert [r["reward_best"] for r in rows] == [max(c) for c in rewards.values()]
    assert [r["reward_best_step"] for r in rows] == [1, 1, 0] and [r["metric.reward_best"] for r in rows] == [7.0] * 3
    rows = json.loads(table_out(capsys, "--summary", "best", "--json")[1])
    assert [r["reward_step"] for r in rows] == [1, 1, 0] and [r["metric.reward_step"] for r in rows] == [99] * 3
    [row] = json.loads(table_out(capsys, "--summary", "both", "--aggregate", "--json")[1])
    assert row["reward_best"] == pytest.approx(np.mean([0.5, 0.9, 0.6])) and row["metric.reward_best"] == 7.0
    rows = json.loads(table_out(capsys, "--json")[1])  # the plain table has no such columns: names as logged
    assert [r["reward_std"] for r in rows] == [11.0, 12.0, 13.0] and "metric.reward_std" not in rows[0]


def test_aggregate_by_and_over_choose_the_groups(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seeds_exp(project)
    rows = json.loads(table_out(capsys, "--json", "--aggregate", "--by", "seed")[1])
    assert [(r["seed"], r["n"]) for r in rows] == [(1, 2), (2, 2), (3, 2)]
    rows = json.loads(table_out(capsys, "--json", "--aggregate", "--over", "lr")[1])
    assert [r["n"] for r in rows] == [6]
    code, _, err = table_out(capsys, "--aggregate", "--by", "momentum")
    assert code == 1 and "--by/--over momentum: no such param" in err


def failed_seed_exp(project: Path) -> Any:
    """seeds_exp's grid where lr=0.1 seed=3 failed before it logged anything, and lr=0.01
    seed=2 logged val_loss but never val_acc."""
    from metarunlog.states import JobState

    subs = []
    for lr in (0.1, 0.01):
        for seed in (1, 2, 3):
            curve = [{"step": 0, "val_loss": lr * 10 + seed / 10, "val_acc": seed / 10}]
            if (lr, seed) == (0.01, 2):
                curve = [{"step": 0, "val_loss": lr * 10 + seed / 10}]
            spec: dict[str, Any] = {"params": {"lr": lr, "seed": seed}, "status": done(), "jsonl": curve}
            if (lr, seed) == (0.1, 3):
                spec = {"params": {"lr": lr, "seed": seed}, "status": done(exit_code=1, state=JobState.FAILED)}
            subs.append(spec)
    return make_exp(project, subs)


def test_aggregate_n_counts_the_runs_with_a_value_and_n_missing_the_failed_one(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failed_seed_exp(project)
    code, out, err = table_out(capsys, "--json", "--aggregate")
    rows = json.loads(out)
    assert code == 0
    assert [(r["lr"], r["n"], r["n_missing"]) for r in rows] == [(0.1, 2, 1), (0.01, 3, 0)]
    assert rows[0]["val_loss"] == pytest.approx((1.1 + 1.2) / 2)  # over the two that logged it
    # val_acc is over fewer runs than n in the lr=0.01 group: its own count is a column
    assert [(r["val_acc_n"], r.get("val_loss_n")) for r in rows] == [(2, None), (2, None)]
    assert list(rows[0]) == ["lr", "n", "n_missing", "val_loss", "val_loss_std", "val_acc", "val_acc_std", "val_acc_n"]
    assert "n counts the runs with a value; 1 run has none (counted in n_missing): 003 (failed)" in err
    header = table_out(capsys, "--aggregate")[1].splitlines()[0].split()
    assert header == ["lr", "n", "n_missing", "val_loss", "val_loss_std", "val_acc", "val_acc_std", "val_acc_n"]
    rows = json.loads(table_out(capsys, "--json", "--aggregate", "--by", "seed")[1])
    assert [(r["seed"], r["n"], r["n_missing"]) for r in rows] == [(1, 2, 0), (2, 2, 0), (3, 1, 1)]
    [row] = json.loads(table_out(capsys, "--json", "--aggregate", "--over", "lr")[1])
    assert (row["n"], row["n_missing"], row["val_acc_n"]) == (5, 1, 4)


def test_aggregate_without_failed_runs_has_no_n_missing_column(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeds_exp(project)
    code, out, err = table_out(capsys, "--json", "--aggregate")
    assert code == 0 and list(json.loads(out)[0]) == ["lr", "n", "val_loss", "val_loss_std", "val_acc", "val_acc_std"]
    assert "n_missing" not in err


def test_an_mrl_repeat_axis_is_averaged_over(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "output").mkdir(exist_ok=True)
    (project / "conf.lua").write_text("lr = {{ lr }}\n-- MRL:grid['lr'] = [0.1, 0.2]\n-- MRL:repeat = 2\n")
    commit_all(project)
    assert main(["new"]) == 0 and main(["makebatch"]) == 0
    exp = project / "output" / "0001"
    for i, sub in enumerate(sorted(exp.glob("00?"))):
        (sub / "metrics.json").write_text(json.dumps({"acc": i / 10}))
    rows = json.loads(table_out(capsys, "--json", "--aggregate")[1])
    assert [(r["lr"], r["n"], r["acc"]) for r in rows] == [(0.1, 2, pytest.approx(0.05)), (0.2, 2, pytest.approx(0.25))]


def test_several_experiments_make_one_table_with_an_exp_column(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeds_exp(project)
    seeds_exp(project, shift=1.0)
    make_exp(project, [{"params": {"lr": 0.5, "seed": 1}}])
    for args in (["1", "2"], ["1-2"], ["1,2"]):
        rows = json.loads(table_out(capsys, "--json", *args)[1])
        assert len(rows) == 12 and rows[0]["exp"] == "0001" and rows[-1]["exp"] == "0002"
    code, out, _ = table_out(capsys, "--all")
    assert code == 0 and out.splitlines()[0].split()[:2] == ["exp", "id"] and len(out.splitlines()) == 14
    rows = json.loads(table_out(capsys, "--json", "--all", "--aggregate", "--by", "exp")[1])
    # 0003's one run has no metrics: no value to count (n), one run without (n_missing)
    assert [(r["exp"], r["n"], r["n_missing"]) for r in rows] == [("0001", 6, 0), ("0002", 6, 0), ("0003", 0, 1)]


def test_aggregate_by_exp_of_one_experiment_names_it(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The rows of one experiment carry no `exp` column; grouping by it must still show its id."""
    from metarunlog import api

    seeds_exp(project)
    seeds_exp(project, shift=1.0)
    rows = json.loads(table_out(capsys, "--json", "2", "--aggregate", "--by", "exp")[1])
    assert [(r["exp"], r["n"]) for r in rows] == [("0002", 6)]
    code, out, _ = table_out(capsys, "--aggregate", "--by", "exp", "lr")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["exp", "lr", "n"] and lines[1].split()[:3] == ["0002", "0.1", "3"]
    agg = api.load_table(1, aggregate=True, by=["exp"])
    assert list(agg["exp"]) == ["0001"] and list(agg["n"]) == [6]


def test_where_filters_on_params_metrics_and_columns(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seeds_exp(project)
    rows = json.loads(table_out(capsys, "--json", "--where", "val_loss < 0.35 and lr == 0.01 and state == 'done'")[1])
    assert [r["id"] for r in rows] == ["004", "005"]
    code, _, err = table_out(capsys, "--where", "__import__('os').system('true')")
    assert code == 1 and "not allowed" in err and "Traceback" not in err
    code, _, err = table_out(capsys, "--where", "val_acc > 0.5 and bogus == 1")
    assert code == 1 and "no column 'bogus'; the columns are: id, lr, seed, state, duration, val_loss, val_acc" in err


def test_a_where_that_matches_no_row_says_so_not_that_there_are_no_sub_experiments(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeds_exp(project)
    code, out, err = table_out(capsys, "--where", "lr > 100")
    assert code == 0 and "makebatch" not in out + err
    assert out.split()[:2] == ["id", "lr"] and len(out.splitlines()) == 1
    assert "mrl: no row matches --where 'lr > 100'" in err


def test_sort_takes_a_dash_value_with_or_without_the_equals_sign(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeds_exp(project)
    spaced = json.loads(table_out(capsys, "--json", "--sort", "-val_acc")[1])
    joined = json.loads(table_out(capsys, "--json", "--sort=-val_acc")[1])
    assert [r["id"] for r in spaced] == [r["id"] for r in joined] == ["004", "005", "006", "001", "002", "003"]


def test_load_table_takes_lists_all_and_the_table_options(project: Path) -> None:
    from metarunlog import api

    seeds_exp(project)
    seeds_exp(project, shift=1.0)
    both = api.load_table([1, 2])
    assert len(both) == 12 and both.index.name == "id" and list(both["exp"].unique()) == ["0001", "0002"]
    assert len(api.load_table("all")) == 12
    agg = api.load_table("all", aggregate=True, by=["exp", "lr"])
    assert list(agg["n"]) == [3, 3, 3, 3]
    best = api.load_table(1, summary="best", where="lr == 0.1")
    assert list(best["val_loss_step"]) == [2, 2, 2]


def test_a_config_warning_is_printed_once(project: Path) -> None:
    set_cfg(project, bogus_key=1)
    commit_all(project)
    grid_exp(project)
    proc = run_mrl("table", cwd=project)
    assert proc.stderr.count("unknown key 'bogus_key'") == 1, proc.stderr


def ids_of(out: str) -> list[tuple[str, ...]]:
    return [tuple(r[k] for k in ("exp", "id") if k in r) for r in csv.DictReader(io.StringIO(out))]


@pytest.mark.parametrize(
    ("args", "rows"),
    [
        (("1/2",), [("002",)]),
        (("1/2,4",), [("002",), ("004",)]),
        (("1/1-2,4",), [("001",), ("002",), ("004",)]),
        (("last/1",), [("001",)]),
        (("0001/002",), [("002",)]),
        (("1/all",), [("001",), ("002",), ("003",), ("004",)]),
        (("output/0001/002",), [("002",)]),
        (("1/2", "2"), [("0001", "002"), ("0002", "001")]),
        (("1/2", "1/4", "2/1"), [("0001", "002"), ("0001", "004"), ("0002", "001")]),
        (("1", "1/2"), [("001",), ("002",), ("003",), ("004",)]),
    ],
)
def test_table_of_exp_slash_selection_shows_only_those_sub_experiments(
    project: Path, args: tuple[str, ...], rows: list[tuple[str, ...]]
) -> None:
    grid_exp(project)
    make_exp(project, [{"params": {"lr": 0.5}, "status": done(), "metrics": {"acc": 0.5}}])
    res = run_mrl("table", "--csv", *args, cwd=project)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert ids_of(res.stdout) == rows


def test_table_of_a_sub_experiment_that_does_not_exist_is_one_error_line(project: Path) -> None:
    grid_exp(project)
    res = run_mrl("table", "1/9", cwd=project)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip() == "mrl: error: no sub-experiment 9 in experiment 0001 (it has 1-4): see `mrl status`"


def test_table_of_exp_slash_selection_aggregates_and_filters_those_sub_experiments_only(project: Path) -> None:
    grid_exp(project)
    res = run_mrl("table", "1/1,3", "--json", "--where", "state == 'done'", cwd=project)
    assert res.returncode == 0, res.stderr
    assert [r["id"] for r in json.loads(res.stdout)] == ["001"]


def seeded(project: Path, name: str) -> None:
    subs = [
        {"params": {"lr": lr, name: s}, "status": done(), "metrics": {"acc": lr + s / 100}}
        for lr in (0.1, 0.2)
        for s in range(3)
    ]
    make_exp(project, subs)


@pytest.mark.parametrize("name", ["random_seed", "repeat"])
def test_aggregate_averages_over_the_params_mrl_cfg_repeat_axes_declares(project: Path, name: str) -> None:
    seeded(project, name)
    rows = json.loads(run_mrl("table", "--aggregate", "--json", cwd=project, check=True).stdout)
    assert len(rows) == 6  # undeclared, random_seed (or a grid['repeat'] param) is a factor, as documented
    set_cfg(project, repeat_axes=[name])
    res = run_mrl("table", "--aggregate", "--json", cwd=project)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    rows = json.loads(res.stdout)
    assert [(r["lr"], r["n"], round(r["acc"], 4)) for r in rows] == [(0.1, 3, 0.11), (0.2, 3, 0.21)]
    assert name not in rows[0]


def test_repeat_axes_that_are_not_a_list_of_names_is_one_error_line(project: Path) -> None:
    set_cfg(project, repeat_axes=["seed", 3])
    res = run_mrl("table", cwd=project)
    assert res.returncode == 1 and res.stderr.startswith("mrl: error: ") and "'repeat_axes'" in res.stderr


def test_a_metrics_json_still_being_written_by_a_running_step_is_not_reported_corrupt(project: Path) -> None:
    # json.dump(d, open("metrics.json", "w")) is written in pieces: while the step ran,
    # `mrl table` and `mrl analyze --watch` said "corrupt record ... fix or remove the file"
    # and exited 1, about a file the training script was writing right then
    from tests.backends.contract import make_experiment
    from tests.helpers.processes import start_mrl, wait_for

    half = "printf '{\"acc\": 0.' > metrics.json"
    exp = make_experiment(
        project,
        [{"x": 1}, {"x": 2}],
        "if [ {{x}} = 1 ]; then echo '{\"acc\": 0.5}' > metrics.json; else " + half + "; sleep 60; fi",
    )
    runner = start_mrl("run", "-j", "2", cwd=project)
    try:
        wait_for(lambda: (exp.dir / "002" / "metrics.json").exists(), what="002 to start writing")
        first = exp.dir / "001" / ".mrl.status"
        wait_for(lambda: first.exists() and '"done"' in first.read_text(), what="001 done")
        table = run_mrl("table", "--json", cwd=project)
        assert table.returncode == 0, table.stderr
        assert "corrupt" not in table.stderr
        rows = {r["id"]: r for r in json.loads(table.stdout)}
        assert rows["001"]["acc"] == 0.5 and rows["002"]["state"] == "running" and "acc" not in rows["002"]
    finally:
        assert run_mrl("cancel", cwd=project).returncode == 0
        runner.communicate(timeout=30)
    # cancelled while it wrote: the file stays cut for good; that is said, not a failed table
    killed = run_mrl("table", "--json", cwd=project)
    cut = exp.dir / "002" / "metrics.json"
    assert killed.returncode == 0, killed.stderr
    assert f"mrl: warning: {cut} is empty or cut short" in killed.stderr and "cancelled" in killed.stderr
    assert "corrupt record" not in killed.stderr and "acc" not in json.loads(killed.stdout)[1]


def test_a_metrics_json_cut_by_a_step_that_failed_or_was_killed_is_a_warning_but_a_done_ones_an_error(
    project: Path,
) -> None:
    # the real json library leaves `{"acc": 0.5, "bad": ` when json.dump raises on a value
    # it cannot write (exit 1); a kill -9 leaves an empty file: `mrl table`/`analyze` exited 1
    # ("corrupt record") for the whole table. A done step's unreadable file is still an error:
    # the record says it succeeded, so its results are what is wrong
    from tests.backends.contract import make_experiment

    dump = 'python -c \'import json; json.dump({"acc": 0.5, "bad": {1}}, open("metrics.json", "w"))\''
    steps = {1: "echo '{\"acc\": 0.9}' > metrics.json", 2: dump, 3: ": > metrics.json; kill -9 $$"}
    script = " el".join(f"if [ {{{{x}}}} = {i} ]; then {c};" for i, c in steps.items()) + " fi"
    exp = make_experiment(project, [{"x": 1}, {"x": 2}, {"x": 3}], script)
    assert run_mrl("run", cwd=project).returncode == 1
    assert (exp.dir / "002" / "metrics.json").read_text().startswith('{"acc": 0.5, "bad": ')
    res = run_mrl("table", "--json", cwd=project)
    assert res.returncode == 0, res.stderr
    rows = {r["id"]: r for r in json.loads(res.stdout)}
    assert rows["001"]["acc"] == 0.9 and "acc" not in rows["002"] and "acc" not in rows["003"]
    warned = [line for line in res.stderr.splitlines() if "is empty or cut short" in line]
    assert [line.split()[2] for line in warned] == [str(exp.dir / f"00{i}" / "metrics.json") for i in (2, 3)]
    assert all("its sub-experiment is failed" in line for line in warned)
    report = run_mrl("analyze", cwd=project)
    assert report.returncode == 0, report.stderr
    assert "is empty or cut short" in (exp.dir / "analysis" / "index.html").read_text()
    # a step that exited 0 leaving an empty file: its record says done, its results are wrong
    (exp.dir / "001" / "metrics.json").write_text("")
    bad = run_mrl("table", cwd=project)
    assert bad.returncode == 1 and f"mrl: error: corrupt record {exp.dir / '001' / 'metrics.json'}" in bad.stderr


def test_where_id_and_exp_as_numbers_match_folders_of_a_custom_format(project: Path) -> None:
    # subExpFormat "run{subExpId:02d}" (and singleExpFormat "exp{expId:03d}"): `mrl run 1/2`
    # runs run02, but `--where "id == 2"` matched nothing ("no row matches")
    set_cfg(project, subExpFormat="run{subExpId:02d}", singleExpFormat="exp{expId:03d}")
    commit_all(project, "formats")
    make_exp(project, [{"params": {"x": i}, "metrics": {"acc": i / 10}} for i in (1, 2, 3)])
    make_exp(project, [{"params": {"x": 9}, "metrics": {"acc": 0.9}}])
    res = run_mrl("table", "--all", "--json", "--where", "id == 2 or (exp == 2 and id in [1])", cwd=project)
    assert res.returncode == 0, res.stderr
    assert [(r["exp"], r["id"]) for r in json.loads(res.stdout)] == [("exp001", "run02"), ("exp002", "run01")]


def test_a_param_named_n_keeps_its_values_beside_the_aggregated_count_n(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--aggregate --json` of a param `n` had only the count (n: 2 on every row: the param's
    # 1 and 16 gone), the text two `n` columns, the report's best combination "n=2"
    subs = [
        {"params": {"n": n, "seed": s}, "status": done(), "metrics": {"loss": n + s / 10}}
        for n in (1, 16)
        for s in (0, 1, 2)
    ]
    make_exp(project, subs)
    capsys.readouterr()
    assert main(["table", "--aggregate", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["param.n"], r["n"]) for r in rows] == [(1, 3), (16, 3)]
    assert [r["loss"] for r in rows] == [pytest.approx(1.1), pytest.approx(16.1)]
    assert main(["table", "--aggregate", "--by", "n"]) == 0
    head = capsys.readouterr().out.splitlines()[0].split()
    assert head[:2] == ["param.n", "n"] and head.count("n") == 1
    from metarunlog.project import Project
    from metarunlog.report import build_report
    from metarunlog.report.summary import best_combination

    exp = Project.find(project).load_exp("last")
    combo = best_combination(build_report(exp, project, exp.dir / "analysis"))
    assert combo is not None and combo.params == "n=1" and combo.n == 3


@pytest.mark.parametrize("name", ["id", "state", "duration", "exp"])
def test_a_param_named_like_a_column_mrl_table_makes_is_refused(project: Path, name: str) -> None:
    # a param `state` showed "done", a param `id` replaced the sub-experiment ids (1, 2 for
    # 001..004 in text and --json): the table lost the params or the runs
    make_exp(project, [])
    proc = run_mrl("makebatch", "--grid", f"{name}=a,b", cwd=project)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert (
        f"param '{name}' has the name of a column mrl table makes (exp, id, state, duration): rename it" in proc.stderr
    )


def test_a_running_ones_duration_is_the_time_since_its_recorded_exact_start(project: Path) -> None:
    # the record's `start` is whole seconds (its documented form); `startEpoch` beside it is
    # the same moment, exact, and the table's running duration counts from it
    import datetime
    import time

    from tests.backends.contract import make_experiment
    from tests.helpers.processes import start_mrl, wait_for

    exp = make_experiment(project, [{"x": 1}], "touch started; sleep 60")
    runner = start_mrl("run", cwd=project)
    try:
        record = exp.dir / "001" / ".mrl.status"
        wait_for(lambda: (exp.dir / "001" / "started").exists(), what="the step to start")
        st = json.loads(record.read_text())
        assert st["state"] == "running" and isinstance(st["startEpoch"], float)
        whole = datetime.datetime.fromisoformat(st["start"]).timestamp()
        assert whole <= st["startEpoch"] < whole + 1
        before = time.time()
        table = run_mrl("table", "--json", cwd=project)
        after = time.time()
        assert table.returncode == 0, table.stderr
        ran = json.loads(table.stdout)[0]["duration"]
        assert before - st["startEpoch"] <= ran <= after - st["startEpoch"]
    finally:
        assert run_mrl("cancel", cwd=project).returncode == 0
        runner.communicate(timeout=30)


def test_table_api_and_report_show_a_step_its_runner_was_killed_before_recording_as_running(project: Path) -> None:
    # the kill -9 gap: `mrl status` and `mrl cancel` showed the step running, while `mrl
    # table`, the API and the report showed its earlier attempt's record (failed, its duration)
    import os
    import signal
    import warnings

    from metarunlog import api
    from tests.backends.contract import make_experiment
    from tests.helpers.processes import alive, kill_runner_after_spawn, statuses

    exp = make_experiment(project, [{"x": 1}], "test -e ../again || exit 3; echo $$ > step.pid; sleep 60")
    assert run_mrl("run", cwd=project).returncode == 1
    before = statuses(exp.dir)["001"]
    assert (before["state"], before["exitCode"]) == ("failed", 3)
    (exp.dir / "again").write_text("")
    pid = kill_runner_after_spawn(project, exp.dir)
    try:
        said = (
            f"mrl: warning: {exp.name}/001 is running: its step (pid {pid}), started by an mrl run that was "
            "killed, runs with no record naming it (mrl cancel stops it)"
        )
        table = run_mrl("table", "--json", cwd=project)
        assert table.returncode == 0, table.stderr
        [row] = json.loads(table.stdout)
        assert row["state"] == "running", row
        # its duration is the step's age (as the kernel stamped it), not the failed attempt's
        assert isinstance(row["duration"], float) and row["duration"] != before["duration"], row
        assert said in table.stderr.splitlines(), table.stderr
        assert run_mrl("table", cwd=project).stdout.splitlines()[1].split()[2] == "running"
        # mrl status: no attempt count, exit code or start of the earlier attempt beside `running`
        line = run_mrl("status", cwd=project).stdout.splitlines()[2].split()
        assert (line[:2], line[3:]) == (["001", "running"], [os.uname().nodename]), line
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tab = api.load_results()
            df = api.load_table()
        assert tab.rows[0]["state"] == "running" and df.loc["001", "state"] == "running"
        assert said.removeprefix("mrl: warning: ") in tab.warnings
        assert said.removeprefix("mrl: warning: ") in [str(w.message) for w in caught]
        report = run_mrl("analyze", cwd=project)
        assert report.returncode == 0, report.stderr
        page = Path(report.stdout.strip()).read_text()
        assert '<span class="state state-running">running</span>' in page
        assert f"its step (pid {pid}), started by an mrl run that was killed" in page
        assert "<th>last record</th><td>failed (exit code 3), attempt 1" in page  # the earlier attempt's, as such
        assert statuses(exp.dir)["001"] == before  # nothing claims what did not happen: no record written
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)  # the test's own step, by the pid it wrote


def test_a_metrics_json_in_another_encoding_is_said_to_be_not_utf8_with_its_offset_whatever_the_state(
    project: Path,
) -> None:
    # json.dump(..., ensure_ascii=False) into a latin-1 file: a failed step's was "empty or cut
    # short ... its step likely stopped while writing it", a done one's a UnicodeDecodeError text
    from tests.backends.contract import make_experiment

    dump = (
        'python -c \'import json; json.dump({"acc": 0.5, "city": "Zürich"}, '
        'open("metrics.json", "w", encoding="latin-1"), ensure_ascii=False)\'; exit {{ x }}'
    )
    exp = make_experiment(project, [{"x": 0}, {"x": 1}], dump)
    assert run_mrl("run", cwd=project).returncode == 1
    offset = len('{"acc": 0.5, "city": "Z')
    assert (exp.dir / "001" / "metrics.json").read_bytes()[offset] == 0xFC  # what latin-1 wrote
    res = run_mrl("table", "--json", cwd=project)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    for sub in ("001", "002"):  # done and failed alike: no stop mid-write makes this
        said = (
            f"mrl: error: {exp.dir / sub / 'metrics.json'} is not UTF-8 (byte 0xfc at offset {offset}): a summary "
            "is JSON in UTF-8, so its values are left out; write it with open(path, 'w', encoding='utf-8'), "
            "or fix or remove the file"
        )
        assert said in res.stderr.splitlines(), res.stderr
    assert "cut short" not in res.stderr
    assert [r["state"] for r in json.loads(res.stdout)] == ["done", "failed"]
