"""`mrl diff A B` on experiments made by the real `mrl new` / `makebatch`, in a real repository."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from metarunlog.main import main
from tests.helpers.repo import commit_all, run_mrl, set_cfg


def write_curves(exp_dir: Path, shift: float) -> None:
    for sub in sorted(p for p in exp_dir.iterdir() if p.name.isdigit()):
        params = json.loads((sub / ".mrl").read_text())["params"]
        rows = [{"step": s, "loss": params["lr"] * 10 + shift + (2 - s) * 0.1} for s in range(3)]
        (sub / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def two_exps(project: Path) -> tuple[Path, Path]:
    assert main(["new", "the first"]) == 0 and main(["makebatch"]) == 0
    first = project / "output" / "0001"
    write_curves(first, 0.0)
    (project / "train.py").write_text("print('training, fixed')\n")
    set_cfg(project, run={"command": "python3 {{codeDir}}/train.py"})
    commit_all(project, "fix the bug")
    assert main(["new", "the second"]) == 0
    second = project / "output" / "0002"
    conf = (second / "conf.lua").read_text().replace("[0.01, 0.04, 0.1]", "[0.01, 0.1]")
    (second / "conf.lua").write_text(conf)
    assert main(["makebatch"]) == 0
    write_curves(second, -0.5)
    return first, second


def diff_json(*args: str, cwd: Path) -> dict[str, Any]:
    proc = run_mrl("diff", *args, "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_two_experiments_differ_in_params_code_run_block_config_and_metrics(
    project: Path, two_exps: tuple[Path, Path]
) -> None:
    d = diff_json("1", "2", cwd=project)
    assert d["a"] == "0001" and d["b"] == "0002"
    assert d["params"] == {"lr": {"a": [0.01, 0.04, 0.1], "b": [0.01, 0.1]}}
    assert {"status": "M", "path": "train.py"} in d["code"]["files"]
    assert d["code"]["a"] != d["code"]["b"] and d["code"]["mrl_diff"]["same"] is True
    assert d["run"]["run.command"] == {"a": None, "b": "python3 {{codeDir}}/train.py"}
    assert "conf.lua" in d["config_files"] and "+-- MRL:grid['lr'] = [0.01, 0.1]" in d["config_files"]["conf.lua"]
    loss = d["metrics"]["loss"]
    assert loss["best"]["a"] == pytest.approx(0.1) and loss["best"]["b"] == pytest.approx(-0.4)
    assert loss["best"]["delta"] == pytest.approx(-0.5)
    assert loss["last"]["a"] == pytest.approx((0.1 + 0.4 + 1.0) / 3)  # the mean over its runs


def test_two_sub_experiments_with_the_same_params_differ_only_in_what_they_gave(
    project: Path, two_exps: tuple[Path, Path]
) -> None:
    d = diff_json("1/1", "2/001", cwd=project)
    assert d["a"] == "0001/001" and d["b"] == "0002/001"
    assert d["params"] == {} and d["config_files"] == {}
    assert d["metrics"]["loss"]["last"]["delta"] == pytest.approx(-0.5)
    assert d["metrics"]["loss"]["best"] == {
        "a": pytest.approx(0.1),
        "b": pytest.approx(-0.4),
        "delta": pytest.approx(-0.5),
    }


def test_the_text_diff_and_code_show_the_git_diff(project: Path, two_exps: tuple[Path, Path]) -> None:
    proc = run_mrl("diff", "1", "2", "--code", cwd=project)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "params:\n  lr: [0.01, 0.04, 0.1] -> [0.01, 0.1]" in out
    assert "file(s) changed" in out and "  M train.py" in out
    assert "+print('training, fixed')" in out
    assert "metrics (delta = B - A):" in out and "loss" in out
    same = run_mrl("diff", "1", "1", cwd=project).stdout
    assert "params: same" in same and "code: same commit" in same and "config files: same" in same


def test_the_metrics_table_stays_aligned_with_wide_unicode_metric_names(
    project: Path, two_exps: tuple[Path, Path]
) -> None:
    import unicodedata

    first, second = two_exps
    for sub in (first / "001", second / "001"):
        (sub / "metrics.json").write_text(json.dumps({"损失": 0.25, "loss_ü": 1.5}))
    out = run_mrl("diff", "1/1", "2/1", cwd=project).stdout
    block = out[out.index("metrics (delta") :].splitlines()[1:]

    def cells(s: str) -> int:
        return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)

    def ends(line: str) -> list[int]:
        return [cells(line[: m.end()]) for m in re.finditer(r"\S+", line)]

    last_b = ends(block[0])[4]  # `last 0002/001` ends here, in terminal cells
    assert [ends(line)[2] for line in block[1:]] == [last_b] * (len(block) - 1), block


def test_two_sub_experiments_are_compared_without_reading_their_neighbours(
    project: Path, two_exps: tuple[Path, Path]
) -> None:
    # `mrl diff 1/1 2/1` read every sub-experiment of both experiments (and called the
    # user's metrics() for each: 20,000 calls for two batches of 10,000) to keep two.
    (project / "mrl_analyze.py").write_text(
        "import os\ndef metrics(subExpDir):\n"
        "    with open(os.path.join(os.path.dirname(__file__), 'calls.txt'), 'a') as f:\n"
        "        f.write(os.path.relpath(subExpDir) + '\\n')\n"
        "    return {'bleu': 20.0 + len(subExpDir) % 3}\n"
    )
    d = diff_json("1/1", "2/2", cwd=project)
    assert "bleu" in d["metrics"] and d["metrics"]["loss"]["last"]["a"] == pytest.approx(0.1)
    calls = (project / "calls.txt").read_text().split()
    assert sorted(calls) == [os.path.join("output", "0001", "001"), os.path.join("output", "0002", "002")]


def test_a_notclean_experiment_shows_its_mrl_diff(project: Path) -> None:
    assert main(["new", "clean"]) == 0
    (project / "train.py").write_text("print('uncommitted')\n")
    assert main(["new", "-nc", "dirty"]) == 0
    d = diff_json("1", "2", cwd=project)
    assert d["code"]["a"] == d["code"]["b"]
    assert d["code"]["mrl_diff"]["a"] is None and "+print('uncommitted')" in d["code"]["mrl_diff"]["b"]
    assert d["code"]["mrl_diff"]["same"] is False


def test_an_unknown_sub_experiment_is_one_clear_error(project: Path, two_exps: tuple[Path, Path]) -> None:
    proc = run_mrl("diff", "1/42", "2", cwd=project)
    assert proc.returncode == 1 and proc.stderr.startswith("mrl: error: 1/42: experiment 0001 has no sub-experiment 42")


def test_a_selection_on_a_side_says_diff_takes_one_sub_experiment_a_side(project: Path, two_exps) -> None:
    # `mrl diff 1/1,2 1/1` said "has no sub-experiment 1,2", as if 1,2 were a missing id
    for side in ("1/1,2", "1/1-3", "1/all"):
        proc = run_mrl("diff", side, "1/1", cwd=project)
        assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
        sel = side.split("/")[1]
        assert proc.stderr.startswith(
            f"mrl: error: {side}: mrl diff compares one sub-experiment with one other, "
            f"and '{sel}' is a selection: give one on each side (`mrl diff 1/1 1/2`)"
        )
        assert f"`mrl table {side}`" in proc.stderr and "has no sub-experiment" not in proc.stderr
        assert run_mrl("diff", "1/1", side, cwd=project).stderr.startswith(f"mrl: error: {side}: mrl diff compares")


def test_the_run_block_compared_is_the_one_that_runs_with_the_experiments_own_override(
    project: Path, two_exps: tuple[Path, Path]
) -> None:
    _, second = two_exps
    (second / ".mrl.cfg").write_text(json.dumps({"run": {"retries": 2}}))
    d = diff_json("1", "2", cwd=project)
    assert d["run"]["run.retries"] == {"a": 0, "b": 2}


def test_the_files_of_each_mrl_diff_are_named_and_code_prints_them(project: Path) -> None:
    assert main(["new", "clean"]) == 0
    (project / "train.py").write_text("print('uncommitted')\n")
    assert main(["new", "-nc", "dirty"]) == 0
    out = run_mrl("diff", "1", "2", cwd=project).stdout
    assert "code: same commit" in out and "    0002: train.py" in out and "+print('uncommitted')" not in out
    full = run_mrl("diff", "1", "2", "--code", cwd=project).stdout
    assert "# 0002/.mrl.diff" in full and "+print('uncommitted')" in full


def test_a_file_git_quotes_is_named_among_the_mrl_diffs_files_too(project: Path) -> None:
    # a path with a newline (or a tab, quote, backslash) has a quoted `diff --git "a/..."`
    # header: it was left out of the list, which then named only the other files
    odd = project / "a\nb"
    odd.write_text("x\n")
    commit_all(project, "an odd name")
    assert main(["new", "clean"]) == 0
    odd.write_text("changed\n")
    (project / "train.py").write_text("print('uncommitted')\n")
    assert main(["new", "-nc", "dirty"]) == 0
    out = run_mrl("diff", "1", "2", cwd=project).stdout
    assert '    0002: "a\\nb", train.py' in out


def test_an_unreadable_sub_experiment_record_is_left_out_of_an_experiments_params_and_named(
    project: Path, two_exps: tuple[Path, Path]
) -> None:
    # One corrupt sub-experiment record of 0002 stopped the whole diff with its error alone.
    first, second = two_exps
    (second / "002" / ".mrl").write_text("{broken")
    proc = run_mrl("diff", "1", "2", "--json", cwd=project)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    d = json.loads(proc.stdout)
    assert d["params"]["lr"] == {"a": [0.01, 0.04, 0.1], "b": [0.01, 0.1]}  # its other sub-experiments'
    assert "loss" in d["metrics"]
    assert [line for line in proc.stderr.splitlines() if "0002/002/.mrl" in line]
    assert all(line.startswith("mrl: error: corrupt record ") for line in proc.stderr.splitlines())
    # a sub-experiment compared with a readable neighbour is not concerned by it
    assert run_mrl("diff", "1/1", "2/1", cwd=project).returncode == 0
    alone = run_mrl("diff", "1/1", "2/2", cwd=project)  # the one asked for: its error
    assert alone.returncode == 1 and alone.stdout == "" and "0002/002/.mrl" in alone.stderr


def test_a_side_whose_experiment_record_cannot_be_read_is_one_error_naming_it(
    project: Path, two_exps: tuple[Path, Path]
) -> None:
    first, second = two_exps
    (second / ".mrl").write_text("{broken")
    for args in (["1", "2"], ["2/1", "1"]):
        proc = run_mrl("diff", *args, cwd=project)
        assert proc.returncode == 1 and proc.stdout == "" and "Traceback" not in proc.stderr
        [line] = proc.stderr.splitlines()
        assert line.startswith("mrl: error: corrupt record ") and "0002/.mrl" in line
    (first / ".mrl").write_bytes(b"\xff")
    [line] = run_mrl("diff", "1", "2", cwd=project).stderr.splitlines()  # both: each named
    assert "0001/.mrl" in line and "0002/.mrl" in line


def test_two_experiments_show_rendered_files_that_differ_for_the_same_params(project: Path) -> None:
    """A reproduction rendered from a template edited after the source's makebatch: EXPDIR
    holds the same template, but what the same params rendered (and ran) differs."""
    set_cfg(project, run={"command": "true"})
    commit_all(project, "run command")
    assert main(["new", "one"]) == 0 and main(["makebatch"]) == 0
    tpl = project / "output" / "0001" / "conf.lua"
    tpl.write_text(tpl.read_text().replace("wdecay =", "weight_decay ="))
    assert run_mrl("reproduce", "1", "1-5", cwd=project).returncode == 0
    d = diff_json("1", "2", cwd=project)
    assert d["config_files"] == {}  # the templates are the same
    assert sorted(d["rendered_files"]) == [f"00{i}/conf.lua" for i in range(1, 6)]
    assert "+    weight_decay = 0.1," in d["rendered_files"]["001/conf.lua"]
    text = run_mrl("diff", "1", "2", cwd=project).stdout
    assert "config files: same" not in text
    assert "  001/conf.lua differs" in text and "--- 0001/001/conf.lua" in text and "+++ 0002/001/conf.lua" in text
    assert "004/conf.lua" not in text and "  ... 2 more sub-experiment files differ (--json has them all)" in text
    same = diff_json("2", "2", cwd=project)
    assert same["rendered_files"] == {}


def test_when_a_template_differs_its_sub_experiments_rendered_files_are_counted_not_each_shown(
    project: Path,
) -> None:
    assert main(["new", "one"]) == 0 and main(["makebatch"]) == 0
    assert main(["new", "two"]) == 0
    tpl = project / "output" / "0002" / "conf.lua"
    tpl.write_text(tpl.read_text().replace("wdecay =", "weight_decay ="))
    assert main(["makebatch"]) == 0
    text = run_mrl("diff", "1", "2", cwd=project).stdout
    assert "  conf.lua differs" in text and "  001/conf.lua differs" not in text
    assert "  9 rendered file(s) of sub-experiments with the same params differ too (--json has them all)" in text
    assert len(diff_json("1", "2", cwd=project)["rendered_files"]) == 9


def test_a_reproduction_whose_runs_diverged_alike_reads_delta_0_not_nan(project: Path) -> None:
    """Both sides inf (a seed that diverged, reproduced exactly): the delta was inf - inf,
    `nan` in the text and null in --json, as if the two could not be compared."""
    diverged = '{"step": 0, "loss": 1.0}\n{"step": 1, "loss": Infinity}\n'
    assert main(["new", "first"]) == 0 and main(["makebatch"]) == 0
    assert main(["reproduce", "1"]) == 0
    for sub in (project / "output").glob("000[12]/00[1-9]"):
        (sub / "metrics.jsonl").write_text(diverged)
    d = diff_json("1", "2", cwd=project)
    assert d["metrics"]["loss"]["last"] == {"a": None, "b": None, "delta": 0}
    text = run_mrl("diff", "1/1", "2/1", cwd=project).stdout
    assert re.search(r"^  loss +inf +inf +0 +1 +1 +0$", text, re.M), text


def test_a_run_block_unpinned_and_missing_from_the_snapshot_config_shows_no_false_backend_differences(
    project: Path,
) -> None:
    # experiment 1: a .mrl.cfg without a run block (as the original's `mrl init` wrote it), so
    # nothing is pinned and the snapshot's config gives only the defaults; experiment 2 pins
    # the full block. The backends' blocks (run.slurm.*) were read as missing on one side:
    # `run.slurm.partition: (none) -> (none)` and 15 more lines that differ in nothing.
    data = json.loads((project / ".mrl.cfg").read_text())
    del data["run"]
    (project / ".mrl.cfg").write_text(json.dumps(data, indent=2))
    commit_all(project, "no run block")
    run_mrl("new", "a", cwd=project, check=True)
    set_cfg(project, run={"command": "true"})
    commit_all(project, "run command")
    run_mrl("new", "b", cwd=project, check=True)
    res = run_mrl("diff", "1", "2", "--json", cwd=project, check=True)
    assert list(json.loads(res.stdout)["run"]) == ["run.command"], res.stdout
