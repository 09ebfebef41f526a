"""`mrl makebatch` end to end, on real experiment folders made by `mrl new`."""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from metarunlog.main import main
from metarunlog.project import Project
from tests.helpers.repo import commit_all, old_one_job_exp, run_mrl, set_cfg

EXP = Path("output") / "0001"


def new_exp(project: Path, conf: str | None = None, **files: str) -> Path:
    """`mrl new`, then (optionally) replace its conf.lua and add files: the user's edits."""
    assert main(["new"]) == 0
    exp = project / EXP
    if conf is not None:
        (exp / "conf.lua").write_text(conf)
    for name, text in files.items():
        (exp / name).write_text(text)
    return exp


def listing(d: Path) -> set[str]:
    return {p.relative_to(d).as_posix() for p in d.rglob("*")}


def record(d: Path) -> dict[str, Any]:
    return json.loads((d / ".mrl").read_text())


def test_the_readme_example_makes_nine_rendered_sub_experiments(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = new_exp(project)
    assert main(["makebatch"]) == 0
    assert "made 9 sub-experiment(s) 001..009" in capsys.readouterr().out
    subs = sorted(p.name for p in exp.iterdir() if p.name.isdigit())
    assert subs == [f"{i:03d}" for i in range(1, 10)]
    assert record(exp / "002") == {"subExpId": 2, "params": {"lr": 0.01, "wdecay": 1.0}}
    conf = (exp / "004" / "conf.lua").read_text()
    assert conf == "local cfg = {\n    learning_rate = 0.04,\n    wdecay = 0.1,\n}\n"
    assert "MRL" not in conf
    batch = record(exp)["batch"]
    assert batch["n"] == 9 and batch["single"] is False and batch["templates"] == ["conf.lua"]
    assert batch["grid"] == {"lr": [0.01, 0.04, 0.1], "wdecay": [0.1, 1.0, 10.0]}
    assert "made" in batch and record(exp)["gitHash"]  # the rest of the record is kept
    loaded = Project.find(project).load_exp(1)
    assert [s.params for s in loaded.sub_experiments()][8] == {"lr": 0.1, "wdecay": 10.0}


def test_templates_see_the_builtin_variables_with_final_paths(project: Path) -> None:
    exp = new_exp(
        project,
        "{{expId}} {{subExpId}} {{subExpNum}} {{expDir}} {{subExpDir}} {{codeDir}} {{x}}\n"
        "# MRL:grid['x'] = ['a', 'b']\n",
    )
    assert main(["makebatch"]) == 0
    e = exp.resolve()
    # subExpId is the folder name, as the original rendered it (a config writing to
    # ../{{subExpId}}/ must reach the folder); the number is subExpNum
    assert (exp / "002" / "conf.lua").read_text() == f"1 002 2 {e} {e}/002 {e}/code b\n"


def test_a_template_without_mrl_lines_makes_one_sub_experiment_001_as_the_original(project: Path) -> None:
    template = "dir = {{ subExpDir }}\nid = {{ subExpId }}\nlr = {{ lr }}\n"
    exp = new_exp(project, template)
    assert main(["makebatch", "--set", "lr=0.5"]) == 0
    assert (exp / "001" / "conf.lua").read_text() == f"dir = {exp.resolve()}/001\nid = 001\nlr = 0.5\n"
    assert (exp / "conf.lua").read_text() == template  # the template stays where the user wrote it
    assert not (exp / ".mrl.template").exists()
    mrl = Project.find(project)
    [sub] = mrl.load_exp(1).sub_experiments()
    assert (sub.name, sub.id, sub.params) == ("001", 1, {"lr": 0.5})
    assert mrl._getSubExperiments(str(exp)) == ["001"]  # what the original's launch scripts loop over
    assert record(exp)["batch"]["single"] is False and record(exp)["batch"]["n"] == 1


def test_an_old_one_job_experiment_becomes_a_batch_with_replace_from_its_saved_template(project: Path) -> None:
    exp = old_one_job_exp(project, "lr = {{ lr | default(1) }}\n", "lr = 1\n")
    (exp / "run.log").write_text("the one job ran\n")
    [sub] = Project.find(project).load_exp(1).sub_experiments()
    assert (sub.name, sub.dir) == (".", exp)  # still read as it was made
    assert main(["makebatch"]) == 1
    saved = exp / ".mrl.template" / "conf.lua"
    template = saved.read_text() + "# MRL:grid['lr'] = [2, 3]\n"
    saved.write_text(template)
    assert main(["makebatch", "-replace"]) == 0
    assert (exp / "002" / "conf.lua").read_text() == "lr = 3\n"
    assert (exp / "conf.lua").read_text() == template  # the template is back in EXPDIR
    assert not saved.exists()
    [trash] = (exp / ".trash").iterdir()
    assert (trash / "run.log").read_text() == "the one job ran\n"
    assert (trash / "conf.lua").read_text() == "lr = 1\n"


def test_replace_refuses_when_the_rendered_file_of_a_one_job_experiment_was_edited(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = old_one_job_exp(project, "lr = 1\n", "lr = 1\n")
    (exp / "conf.lua").write_text("lr = 2\n")
    assert main(["makebatch", "-replace"]) == 1
    assert ".mrl.template" in capsys.readouterr().err
    assert (exp / "conf.lua").read_text() == "lr = 2\n"


def test_several_templates_render_with_the_same_params_and_copy_files_are_copied(project: Path) -> None:
    set_cfg(project, confTemplFile=["conf.lua", "model.yaml"], copyFiles=["conf.lua", "model.yaml", "data.txt"])
    (project / "model.yaml").write_text("layers: {{ layers }}\n# MRL:grid['layers'] = [2, 4]\n")
    (project / "data.txt").write_text("{{ not rendered }}\n")
    commit_all(project, "two templates")
    exp = new_exp(project, "lr = {{ lr }}\n-- MRL:grid['lr'] = [0.1]\n")
    assert main(["makebatch"]) == 0
    assert (exp / "002" / "model.yaml").read_text() == "layers: 4\n"
    assert (exp / "002" / "conf.lua").read_text() == "lr = 0.1\n"
    assert (exp / "002" / "data.txt").read_text() == "{{ not rendered }}\n"
    assert record(exp)["batch"]["templates"] == ["conf.lua", "model.yaml"]


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ("x\n-- MRL:grid['lr'] = [1,\n", "conf.lua: line 2: cannot read MRL line"),
        ("{{ lr }}\n-- MRL:grid['lr'] = []\n", "conf.lua: line 2: grid['lr'] is empty"),
        ("a\n{{ lr }\n-- MRL:grid['lr'] = [1]\n", "conf.lua: line 2: template syntax error"),
        ("a\n\n{{ lrr }}\n-- MRL:grid['lr'] = [1]\n", "conf.lua: line 3: 'lrr' is undefined"),
        (
            "{{ b }}\n-- MRL:params = [{'b': 1}, {'c': 2}]\n",
            "conf.lua: line 1: 'b' is undefined (rendering sub-experiment 2",
        ),
        ("{{ expId }}\n-- MRL:grid['expId'] = [1]\n", "conf.lua: line 2: param 'expId' has the name of a variable"),
        # `| tojson` (the fix the JSON check names) of a misspelt param said "TypeError: Object
        # of type StrictUndefined is not JSON serializable": neither the name nor the fix
        ("x = {{ lrr | tojson }}\n-- MRL:grid['lr'] = [1]\n", "conf.lua: line 1: 'lrr' is undefined"),
        ("x\n-- MRL:frid['lr'] = [1]\n", "conf.lua: line 2: cannot assign to 'frid"),
    ],
)
def test_bad_input_is_one_error_line_and_creates_nothing(
    project: Path, capsys: pytest.CaptureFixture[str], conf: str, message: str
) -> None:
    exp = new_exp(project, conf)
    before = listing(exp)
    assert main(["makebatch"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrl: error: ") and message in err and err.count("\n") == 1
    assert listing(exp) == before
    assert "batch" not in record(exp)


def test_the_injection_line_is_never_run(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    exp = new_exp(project, f"{{{{x}}}}\n-- MRL:grid['x'] = __import__('os').system('touch {marker}')\n")
    before = listing(exp)
    assert main(["makebatch"]) == 1
    assert "conf.lua: line 2: the value" in capsys.readouterr().err
    assert not marker.exists()
    assert listing(exp) == before


def test_an_expanded_experiment_is_not_expanded_again_without_replace_or_extend(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = new_exp(project)
    assert main(["makebatch"]) == 0
    before = listing(exp)
    assert main(["makebatch"]) == 1
    err = capsys.readouterr().err
    assert "already expanded (9 sub-experiment(s))" in err and "-replace" in err and "--extend" in err
    assert listing(exp) == before


def test_a_missing_template_says_what_to_do(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = new_exp(project)
    (exp / "conf.lua").unlink()
    assert main(["makebatch"]) == 1
    assert "conf.lua not found" in capsys.readouterr().err


def test_unused_params_and_duplicates_are_warnings(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    set_cfg(project, run={"command": "python train.py --seed {{ seed }}"})
    commit_all(project, "run command")
    new_exp(
        project,
        "{{ lr }}\n-- MRL:grid['lr'] = [1, 1, 2]\n-- MRL:grid['label'] = ['x']\n-- MRL:grid['seed'] = [0]\n",
    )
    assert main(["makebatch"]) == 0
    err = capsys.readouterr().err
    assert "mrl: warning: 1 duplicate combination(s) made once" in err
    assert "mrl: warning: param(s) label used by no template nor run.command" in err
    assert "seed" not in err.split("param(s)")[1]


@pytest.mark.parametrize("how", [["--repeat", "3"], []])
def test_a_repeat_no_template_uses_is_no_unused_param_warning(
    project: Path, capsys: pytest.CaptureFixture[str], how: list[str]
) -> None:
    """`--repeat 3` / `MRL:repeat = 3` number the runs of one combination: that they only
    label the runs is their point, not a mistake to warn about."""
    set_cfg(project, run={"command": "python train.py --lr {{ lr }}"})
    commit_all(project, "run command")
    new_exp(project, "{{ lr }}\n-- MRL:grid['lr'] = [1, 2]\n" + ("" if how else "-- MRL:repeat = 3\n"))
    assert main(["makebatch", *how]) == 0
    captured = capsys.readouterr()
    assert "made 6 sub-experiment(s)" in captured.out
    assert "warning" not in captured.err, captured.err


def test_dry_run_prints_the_table_and_writes_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = new_exp(project)
    before = listing(exp)
    capsys.readouterr()
    assert main(["makebatch", "--dry-run", "--grid", "wdecay=0,5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("would make 6 sub-experiment(s) 001..006")
    assert out[1].split() == ["subexp", "lr", "wdecay"]
    assert out[2].split() == ["001", "0.01", "0"] and out[7].split() == ["006", "0.1", "5"]
    assert listing(exp) == before


def test_a_dry_run_extend_with_nothing_to_add_prints_no_empty_table(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: "nothing to add: ..." was followed by a table of no rows, a lone "subexp" line.
    new_exp(project)
    assert main(["makebatch"]) == 0
    capsys.readouterr()
    assert main(["makebatch", "--extend", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("nothing to add"), out


def test_dry_run_keeps_its_columns_aligned_with_wide_param_values_on_a_terminal(project: Path) -> None:
    # 最速降下 (two terminal cells per character) shifted the column after it by one cell
    # per character: widths were counted in characters, not cells.
    import re
    import unicodedata

    new_exp(project)
    out = run_mrl("makebatch", "--dry-run", "--grid", "opt=adam,最速降下", "--grid", "seed=1,2", cwd=project)
    lines = out.stdout.splitlines()[1:]

    def starts(line: str) -> list[int]:
        return [
            sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line[: m.start()])
            for m in re.finditer(r"\S+", line)
        ]

    assert len(lines) == 37 and len({tuple(starts(line)) for line in lines}) == 1, out.stdout + out.stderr


def test_dry_run_still_reports_an_undefined_variable(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new_exp(project, "{{ oops }}\n-- MRL:grid['lr'] = [1]\n")
    assert main(["makebatch", "--dry-run"]) == 1
    assert "'oops' is undefined" in capsys.readouterr().err


def test_an_undefined_variable_error_shows_how_to_give_it_a_default(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = new_exp(project, "{{ dropout }}\n-- MRL:grid['lr'] = [1]\n")
    assert main(["makebatch"]) == 1
    assert "| default(...)" in capsys.readouterr().err  # the original rendered it as ''
    (exp / "conf.lua").write_text("{{ dropout | default(0.1) }}\n-- MRL:grid['lr'] = [1]\n")
    assert main(["makebatch"]) == 0
    assert (exp / "001" / "conf.lua").read_text() == "0.1\n"


def test_set_and_grid_change_the_batch_without_editing_the_file(project: Path) -> None:
    exp = new_exp(project)
    argv = ["makebatch", "--set", "wdecay=0.5", "--grid", "lr=[1e-3, 1e-4]", "--set", "tag=run a", "n=3"]
    assert main(argv) == 0
    assert [record(exp / n)["params"] for n in ("001", "002")] == [
        {"lr": 0.001, "wdecay": 0.5, "tag": "run a", "n": 3},
        {"lr": 0.0001, "wdecay": 0.5, "tag": "run a", "n": 3},
    ]
    assert not (exp / "003").exists()
    assert record(exp)["batch"]["set"] == {"wdecay": 0.5, "tag": "run a", "n": 3}


def test_extend_adds_only_new_combinations_after_the_last_and_leaves_the_rest(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = new_exp(project)
    assert main(["makebatch"]) == 0
    (exp / "003" / "metrics.json").write_text('{"loss": 1}')
    (exp / "005" / "conf.lua").write_text("edited by hand\n")
    conf = (exp / "conf.lua").read_text().replace("[0.01, 0.04, 0.1]", "[0.01, 0.04, 0.1, 0.3]")
    (exp / "conf.lua").write_text(conf)
    capsys.readouterr()
    assert main(["makebatch", "--extend"]) == 0
    assert "made 3 sub-experiment(s) 010..012" in capsys.readouterr().out
    assert [record(exp / n)["params"]["lr"] for n in ("010", "011", "012")] == [0.3, 0.3, 0.3]
    assert (exp / "003" / "metrics.json").read_text() == '{"loss": 1}'
    assert (exp / "005" / "conf.lua").read_text() == "edited by hand\n"
    assert record(exp)["batch"]["n"] == 12 and record(exp)["batch"]["added"] == 3
    assert main(["makebatch", "--extend"]) == 0
    assert "nothing to add" in capsys.readouterr().out


def test_replace_moves_old_sub_experiments_with_results_to_trash(project: Path) -> None:
    exp = new_exp(project)
    assert main(["makebatch"]) == 0
    (exp / "007" / "metrics.json").write_text('{"loss": 7}')
    (exp / ".mrl.done").write_text("")
    assert main(["makebatch", "-replace", "--set", "lr=1"]) == 0
    [trash] = (exp / ".trash").iterdir()
    assert sorted(p.name for p in trash.iterdir()) == [".mrl.done", *(f"{i:03d}" for i in range(1, 10))]
    assert (trash / "007" / "metrics.json").read_text() == '{"loss": 7}'
    assert sorted(p.name for p in exp.iterdir() if p.name.isdigit()) == ["001", "002", "003"]
    assert record(exp)["batch"]["trash"] == f".trash/{trash.name}"
    assert main(["makebatch", "-replace"]) == 0
    assert len(list((exp / ".trash").iterdir())) == 2  # a second replace never overwrites the first


def test_replace_refuses_while_a_sub_experiment_runs(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = new_exp(project)
    assert main(["makebatch"]) == 0
    fd = os.open(exp / "004" / ".mrl.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert main(["makebatch", "-replace"]) == 1
        assert "004 is running" in capsys.readouterr().err
    finally:
        os.close(fd)
    assert not (exp / ".trash").exists()


def test_a_write_error_midway_leaves_no_partial_batch(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = new_exp(project)
    before = listing(exp)
    real_mkdir = os.mkdir

    def disk_full_at_the_sixth(path: Any, *args: Any, **kw: Any) -> None:
        if Path(path).name == "006":
            raise OSError(28, "No space left on device")
        real_mkdir(path, *args, **kw)

    monkeypatch.setattr(os, "mkdir", disk_full_at_the_sixth)
    assert main(["makebatch"]) == 1
    assert "No space left on device; nothing was changed" in capsys.readouterr().err
    assert listing(exp) == before


def test_a_failing_move_into_place_is_undone(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exp = new_exp(project)
    assert main(["makebatch"]) == 0
    (exp / "001" / "result.txt").write_text("keep me")
    before = listing(exp)
    real_rename, calls = os.rename, []

    def flaky_rename(src: Any, dst: Any) -> None:
        calls.append(dst)
        if len(calls) == 12:  # 9 old ones to .trash, then the 3rd new one into place
            raise OSError(5, "Input/output error")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", flaky_rename)
    assert main(["makebatch", "-replace", "--grid", "lr=5"]) == 1
    monkeypatch.setattr(os, "rename", real_rename)
    assert listing(exp) - {".trash"} == before
    assert (exp / "001" / "result.txt").read_text() == "keep me"


def test_a_temp_folder_left_by_a_killed_makebatch_is_cleaned_up(project: Path) -> None:
    exp = new_exp(project)
    (exp / ".mrl.batch-tmp-dead").mkdir()
    (exp / ".mrl.batch-tmp-dead" / "001").mkdir()
    assert main(["makebatch"]) == 0
    assert not (exp / ".mrl.batch-tmp-dead").exists()


def test_repeat_and_sample_are_recorded(project: Path) -> None:
    exp = new_exp(project, "{{lr}} {{repeat}}\n# MRL:grid['lr'] = [1, 2, 3, 4]\n# MRL:sample = 2\n# MRL:repeat = 2\n")
    assert main(["makebatch"]) == 0
    params = [record(exp / f"{i:03d}")["params"] for i in range(1, 5)]
    assert [p["repeat"] for p in params] == [0, 1, 0, 1]
    assert params[0]["lr"] == params[1]["lr"] != params[2]["lr"]
    batch = record(exp)["batch"]
    assert (batch["n"], batch["repeat"], batch["sample"], batch["seed"]) == (4, 2, 2, 0)


def test_the_command_line_reports_errors_in_one_line_as_a_subprocess(project: Path) -> None:
    new_exp(project, "{{x}}\n-- MRL:grid['x'] = [1]\n-- MRL:grid['x'] = [2]\n")
    res = run_mrl("makebatch", "1", cwd=project)
    assert res.returncode == 1
    assert res.stderr == ("mrl: error: conf.lua: line 3: grid['x'] is already set at conf.lua: line 2: keep one\n")
    ok = run_mrl("makebatch", "--help", cwd=project)
    assert ok.returncode == 0 and "-replace" in ok.stdout and ".trash" in ok.stdout


def test_mrl_new_after_a_one_job_experiment_copies_its_template_not_the_rendered_file(project: Path) -> None:
    old_one_job_exp(project, "dir = {{ expDir }}\n", "dir = /somewhere\n")
    assert main(["new"]) == 0
    assert (project / "output" / "0002" / "conf.lua").read_text() == "dir = {{ expDir }}\n"


def test_replace_renders_an_old_one_job_experiment_again_from_its_saved_template(project: Path) -> None:
    exp = old_one_job_exp(project, "x = {{ x | default(1) }}\n", "x = 1\n")
    assert main(["makebatch", "-replace", "--set", "x=2"]) == 0
    assert (exp / "001" / "conf.lua").read_text() == "x = 2\n"
    assert (exp / "conf.lua").read_text() == "x = {{ x | default(1) }}\n"
    [trash] = (exp / ".trash").iterdir()
    assert (trash / "conf.lua").read_text() == "x = 1\n"


def test_extend_cannot_extend_an_old_one_job_experiment(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old_one_job_exp(project, "x = 1\n", "x = 1\n")
    assert main(["makebatch", "--extend"]) == 1
    assert "use -replace" in capsys.readouterr().err


def test_idiomatic_sweeps_of_the_original_make_their_batch(project: Path) -> None:
    exp = new_exp(
        project,
        "lr = {{ lr }}, bs = {{ bs }}, wd = {{ wd }}\n"
        "-- MRL:grid['lr'] = [10**-i for i in range(1, 3)]\n"
        "-- MRL:grid['bs'] = [2**k for k in range(6, 8)]\n"
        "-- MRL:grid['wd'] = [lr / 10 for lr in grid['lr']][:1]\n",
    )
    assert main(["makebatch", "--grid", "lr=logspace(-3, -2, 2)"]) == 0
    assert [record(exp / f"00{i}")["params"] for i in (1, 4)] == [
        {"lr": 0.001, "bs": 64, "wd": 0.0001},
        {"lr": 0.01, "bs": 128, "wd": 0.0001},
    ]
    assert (exp / "004" / "conf.lua").read_text() == "lr = 0.01, bs = 128, wd = 0.0001\n"


def test_a_dotted_param_is_reached_through_params_in_a_template(project: Path) -> None:
    exp = new_exp(project, "dropout = {{ params['model.dropout'] }}\n-- MRL:grid['model.dropout'] = [0.1, 0.5]\n")
    assert main(["makebatch"]) == 0
    assert (exp / "002" / "conf.lua").read_text() == "dropout = 0.5\n"
    assert record(exp / "002")["params"] == {"model.dropout": 0.5}


@pytest.mark.parametrize("name", ["resource", "params", "subExpDir"])
def test_a_reserved_param_name_is_refused_by_name_in_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    exp = new_exp(project, "x\n")
    before = listing(exp)
    assert main(["makebatch", "--grid", f"{name}=1,2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrl: error: ") and f"param '{name}' has the name of a variable mrl sets" in err
    assert err.count("\n") == 1 and listing(exp) == before


# -- sweeps from the command line, defaults, several grids (issue 12) ---------------------


def test_a_flag_style_script_needs_no_template_grid_from_the_command_line(project: Path) -> None:
    set_cfg(project, confTemplFile=None, copyFiles=[])
    commit_all(project, "no template")
    assert main(["new"]) == 0
    exp = project / EXP
    res = run_mrl("makebatch", "--grid", "lr=0.1,0.01", "--grid", "hidden=16,64", cwd=project)
    assert res.returncode == 0, res.stderr
    assert "made 4 sub-experiment(s) 001..004" in res.stdout
    assert [record(exp / f"00{i}")["params"] for i in range(1, 5)] == [
        {"lr": 0.1, "hidden": 16},
        {"lr": 0.1, "hidden": 64},
        {"lr": 0.01, "hidden": 16},
        {"lr": 0.01, "hidden": 64},
    ]
    assert sorted(p.name for p in (exp / "003").iterdir()) == [".mrl"]
    assert record(exp)["batch"]["templates"] == []
    assert record(exp)["batch"]["cli"] == {"set": {}, "grid": {"lr": [0.1, 0.01], "hidden": [16, 64]}, "repeat": None}


def test_dotted_and_dashed_names_come_through_the_grid_option(project: Path) -> None:
    set_cfg(project, confTemplFile=None, copyFiles=[])
    commit_all(project, "no template")
    assert main(["new"]) == 0
    assert main(["makebatch", "--grid", "model.dropout=0.1,0.2", "--set", "learning-rate=3"]) == 0
    assert record(project / EXP / "002")["params"] == {"model.dropout": 0.2, "learning-rate": 3}


MLRUNNER = """\
{"data": {{ data | tojson }}, "norm": {{ norm | tojson }},
 "moment": {{ moment }}, "early_stop": {{ early_stop | tojson }}}
// MRL:defaults = {'data': 'iwslt14', 'norm': 'batch', 'moment': 0.1, 'early_stop': False}
// MRL:grids = [{'norm': ['new', 'batch'], 'moment': [0.1, 0.05]}, {'norm': ['batch'], 'early_stop': [True, False]}]
"""


def test_the_mlrunner_example_makes_five_sub_experiments_with_defaults_as_params(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_cfg(project, confTemplFile="conf.json", copyFiles=["conf.json"])
    (project / "conf.json").write_text(MLRUNNER)
    commit_all(project, "mlrunner example")
    exp = new_exp(project)
    assert main(["makebatch"]) == 0
    assert "made 5 sub-experiment(s) 001..005" in capsys.readouterr().out
    assert json.loads((exp / "005" / "conf.json").read_text()) == {
        "data": "iwslt14",
        "norm": "batch",
        "moment": 0.1,
        "early_stop": True,
    }
    assert record(exp / "001")["params"] == {"data": "iwslt14", "norm": "new", "moment": 0.1, "early_stop": False}
    batch = record(exp)["batch"]
    assert batch["n"] == 5 and batch["duplicates"] == 1 and batch["defaults"]["data"] == "iwslt14"
    assert len(batch["grids"]) == 2
    capsys.readouterr()
    assert main(["table", "--all-params", "--tsv"]) == 0
    head = capsys.readouterr().out.splitlines()[0].split("\t")
    assert "data" in head  # a default is a param like any other


def test_extend_remembers_the_batchs_set_and_grid_options(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = new_exp(project)
    assert main(["makebatch", "--grid", "lr=1,2", "--set", "tag=a"]) == 0
    assert record(exp)["batch"]["n"] == 6
    conf = (exp / "conf.lua").read_text().replace("[0.1, 1.0, 10.0]", "[0.1, 1.0, 10.0, 100.0]")
    (exp / "conf.lua").write_text(conf)
    capsys.readouterr()
    assert main(["makebatch", "--extend"]) == 0
    out = capsys.readouterr().out
    assert "made 2 sub-experiment(s) 007..008" in out and "--set tag=a --grid lr=1,2" in out
    assert [record(exp / n)["params"] for n in ("007", "008")] == [
        {"lr": 1, "wdecay": 100.0, "tag": "a"},
        {"lr": 2, "wdecay": 100.0, "tag": "a"},
    ]
    assert main(["makebatch", "--extend", "--grid", "lr=1,2,3"]) == 0  # a new value for a remembered axis
    assert record(exp)["batch"]["n"] == 12
    assert record(exp)["batch"]["cli"]["grid"] == {"lr": [1, 2, 3]}


def test_extend_with_a_grid_for_a_remembered_set_sweeps_it_and_back(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the remembered `--set tag=a` fixed tag again over the new `--grid tag=a,b`: "nothing
    # to add", and the record said both
    exp = new_exp(project)
    assert main(["makebatch", "--set", "tag=a"]) == 0
    assert main(["makebatch", "--extend", "--grid", "tag=a,b"]) == 0
    batch = record(exp)["batch"]
    assert batch["n"] == 18 and batch["cli"]["set"] == {} and batch["cli"]["grid"] == {"tag": ["a", "b"]}
    assert sorted({record(exp / f"{i:03d}")["params"]["tag"] for i in range(1, 19)}) == ["a", "b"]
    assert main(["makebatch", "--extend", "--set", "tag=c"]) == 0  # and back to one value
    batch = record(exp)["batch"]
    assert batch["n"] == 27 and batch["cli"]["set"] == {"tag": "c"} and batch["cli"]["grid"] == {}


def test_extend_says_which_remembered_options_it_applied_again_not_the_ones_it_replaced(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # it said "with the batch's own --grid tag=a,b --grid seed=0,1" after a --grid seed=0,1,2
    # that replaced the remembered seed axis: the seeds it made were 0, 1 and 2
    new_exp(project)
    assert main(["makebatch", "--grid", "tag=a,b", "--grid", "seed=0,1"]) == 0
    capsys.readouterr()
    assert main(["makebatch", "--extend", "--grid", "seed=0,1,2"]) == 0
    out = capsys.readouterr().out
    assert "(kept the 36 existing), with the batch's own --grid tag=a,b\n" in out, out
    assert main(["makebatch", "--extend", "--grid", "seed=0,1,2", "--set", "tag=c"]) == 0
    out = capsys.readouterr().out
    assert "batch's own" not in out, out  # both remembered options were replaced


def test_set_and_grid_of_the_same_param_on_one_command_line_is_an_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = new_exp(project)
    assert main(["makebatch", "--set", "lr=1", "--grid", "lr=1,2"]) == 1  # the --set silently won
    err = capsys.readouterr().err
    assert "mrl: error: --set lr=... and --grid lr=... name the same param: give one of them" in err
    assert not (exp / "001").exists()


@pytest.mark.parametrize("flag,values", [("--grid", ["lr=0.1", "lr=0.2"]), ("--set", ["lr=0.1", "lr=0.2"])])
def test_the_same_param_given_twice_to_set_or_grid_is_an_error(
    project: Path, capsys: pytest.CaptureFixture[str], flag: str, values: list[str]
) -> None:
    exp = new_exp(project)
    assert main(["makebatch", flag, values[0], flag, values[1]]) == 1  # the last one silently won
    assert f"mrl: error: {flag} lr=... is given twice: give it once" in capsys.readouterr().err
    assert not (exp / "001").exists()


def test_adding_repeat_and_extending_adds_only_the_new_repeats(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = new_exp(project)
    assert main(["makebatch"]) == 0
    (exp / "001" / "metrics.json").write_text('{"loss": 1}')
    (exp / "conf.lua").write_text((exp / "conf.lua").read_text() + "-- MRL:repeat = 3\n")
    capsys.readouterr()
    assert main(["makebatch", "--extend"]) == 0
    assert "made 18 sub-experiment(s) 010..027" in capsys.readouterr().out
    added = [record(exp / f"{i:03d}")["params"] for i in range(10, 28)]
    assert sorted({p["repeat"] for p in added}) == [1, 2]
    assert added[:2] == [{"lr": 0.01, "wdecay": 0.1, "repeat": 1}, {"lr": 0.01, "wdecay": 0.1, "repeat": 2}]
    assert record(exp / "001")["params"] == {"lr": 0.01, "wdecay": 0.1}  # left as it was: repeat 0
    assert (exp / "001" / "metrics.json").exists()


def test_repeat_option_makes_repeats_and_set_repeat_points_to_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = new_exp(project)
    assert main(["makebatch", "--repeat", "2", "--grid", "lr=1"]) == 0
    assert [record(exp / f"00{i}")["params"]["repeat"] for i in range(1, 7)] == [0, 1, 0, 1, 0, 1]
    assert record(exp)["batch"]["repeat"] == 2 and record(exp)["batch"]["cli"]["repeat"] == 2
    before = listing(exp)
    capsys.readouterr()
    assert main(["makebatch", "-replace", "--set", "repeat=5"]) == 1
    err = capsys.readouterr().err
    assert "use --repeat N" in err and err.count("\n") == 1
    assert main(["makebatch", "-replace", "--repeat", "0"]) == 1
    assert "positive number" in capsys.readouterr().err
    assert listing(exp) == before


def test_dry_run_on_an_expanded_experiment_previews_the_template_as_it_is_now(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = new_exp(project)
    assert main(["makebatch"]) == 0
    (exp / "conf.lua").write_text((exp / "conf.lua").read_text().replace("[0.1, 1.0, 10.0]", "[0.1, 5.0]"))
    before = listing(exp)
    capsys.readouterr()
    assert main(["makebatch", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("would make 6 sub-experiment(s) 001..006")
    assert "it has 9 now" in out[0] and "--extend would add 3" in out[0]
    assert out[3].split() == ["002", "0.01", "5.0"]
    assert listing(exp) == before


def test_dry_run_preview_counts_what_extend_would_add_with_the_batchs_own_options(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --extend applies the batch's remembered --grid/--set, so the preview's count must too:
    # with `--grid lr=0.1` remembered, an unchanged template adds nothing, not 6.
    exp = new_exp(project)
    assert main(["makebatch", "--grid", "lr=0.1"]) == 0
    capsys.readouterr()
    assert main(["makebatch", "--dry-run"]) == 0
    assert "it has 3 now" in capsys.readouterr().out.splitlines()[0]
    assert main(["makebatch", "--dry-run"]) == 0
    assert "--extend would add 0" in capsys.readouterr().out.splitlines()[0]
    assert main(["makebatch", "--extend"]) == 0
    assert "nothing to add" in capsys.readouterr().out
    assert main(["makebatch", "--dry-run", "--grid", "lr=0.1,5.0"]) == 0
    assert "--extend would add 3" in capsys.readouterr().out.splitlines()[0]
    assert len(list(exp.glob("00?"))) == 3


def test_dry_run_previews_a_one_job_experiment_from_its_saved_template(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = old_one_job_exp(project, "lr = {{ lr | default(1) }}\n", "lr = 1\n")
    saved = exp / ".mrl.template" / "conf.lua"
    saved.write_text(saved.read_text() + "# MRL:grid['lr'] = [2, 3]\n")
    before = listing(exp)
    capsys.readouterr()
    assert main(["makebatch", "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("would make 2 sub-experiment(s) 001..002")
    assert listing(exp) == before


def test_extend_on_a_finished_experiment_removes_the_done_mark(project: Path) -> None:
    exp = new_exp(project)
    assert main(["makebatch"]) == 0
    (exp / ".mrl.done").write_text("")
    assert main(["makebatch", "--extend"]) == 0  # nothing new: still done
    assert (exp / ".mrl.done").exists()
    (exp / "conf.lua").write_text((exp / "conf.lua").read_text().replace("[0.1, 1.0, 10.0]", "[0.1, 1.0, 10.0, 7.0]"))
    assert main(["makebatch", "--extend"]) == 0
    assert not (exp / ".mrl.done").exists()


def test_extend_keeps_the_batch_keys_a_newer_mrl_wrote_and_replace_starts_a_new_batch(project: Path) -> None:
    # the record's own unknown keys were kept, but --extend dropped the batch's
    exp = new_exp(project)
    assert main(["makebatch"]) == 0
    record = json.loads((exp / ".mrl").read_text())
    record["batch"]["futureKey"] = {"by": "mrl 9"}
    (exp / ".mrl").write_text(json.dumps(record))
    (exp / "conf.lua").write_text((exp / "conf.lua").read_text().replace("[0.1, 1.0, 10.0]", "[0.1, 1.0, 10.0, 7.0]"))
    assert main(["makebatch", "--extend"]) == 0
    batch = json.loads((exp / ".mrl").read_text())["batch"]
    assert batch["futureKey"] == {"by": "mrl 9"} and batch["n"] == 12 and batch["added"] == 3
    assert main(["makebatch", "-replace"]) == 0
    assert "futureKey" not in json.loads((exp / ".mrl").read_text())["batch"]


def test_extend_on_a_batch_the_original_made_ignores_subexpid_in_params(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = new_exp(project)
    assert main(["makebatch"]) == 0
    for i in range(1, 10):  # the original wrote {"subExpId": "001", ...} inside params
        rec = record(exp / f"{i:03d}")
        (exp / f"{i:03d}" / ".mrl").write_text(json.dumps({"params": {**rec["params"], "subExpId": f"{i:03d}"}}))
    capsys.readouterr()
    assert main(["makebatch", "--extend"]) == 0
    assert "nothing to add: all 9 combinations exist" in capsys.readouterr().out


def test_extend_with_a_folder_made_by_hand_counts_the_batch_combinations_not_the_folders(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # it said "all 10 combinations exist" of a 9-combination batch beside a folder 010/ made
    # by hand (no .mrl, read as empty params)
    exp = new_exp(project)
    assert main(["makebatch"]) == 0
    (exp / "010").mkdir()
    capsys.readouterr()
    assert main(["makebatch", "--extend"]) == 0
    assert "nothing to add: all 9 combinations exist" in capsys.readouterr().out


# -- rendered JSON / TOML / YAML must still parse (issues 10, 12) ------------------------


def json_project(project: Path, template: str, name: str = "conf.json") -> Path:
    set_cfg(project, confTemplFile=name, copyFiles=[name])
    (project / name).write_text(template)
    commit_all(project, f"{name} template")
    return new_exp(project)


@pytest.mark.parametrize(
    ("value", "shown"),
    [("'adam'", "adam"), ("{'a': 1}", "{'a': 1}"), ("True", "True"), ("None", "None"), ("['x']", "['x']")],
)
def test_a_json_template_rendering_python_repr_is_refused_naming_file_line_value_and_fix(
    project: Path, capsys: pytest.CaptureFixture[str], value: str, shown: str
) -> None:
    exp = json_project(
        project,
        '{\n  "lr": {{ lr }},\n  "opt": {{ opt }}\n}\n'
        f"// MRL:grid['lr'] = [0.1]\n// MRL:grid['opt'] = [{value}]\n",
    )
    before = listing(exp)
    assert main(["makebatch"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrl: error: conf.json: line 3: the rendered file is not valid JSON")
    assert f"param opt rendered as {shown}" in err and "{{ opt | tojson }}" in err and err.count("\n") == 1
    assert listing(exp) == before


def test_tojson_renders_valid_json_for_every_kind_of_value(project: Path) -> None:
    exp = json_project(
        project,
        '{"opt": {{ opt | tojson }}, "lr": {{ lr }}}\n'
        "// MRL:grid['opt'] = ['adam', {'a': 1}, True, None, 'it\"s']\n// MRL:grid['lr'] = [0.1]\n",
    )
    assert main(["makebatch"]) == 0
    assert [json.loads((exp / f"00{i}" / "conf.json").read_text())["opt"] for i in range(1, 6)] == [
        "adam",
        {"a": 1},
        True,
        None,
        'it"s',
    ]


def test_dry_run_checks_the_rendered_json_too(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    json_project(project, "{\"opt\": {{ opt }}}\n// MRL:grid['opt'] = ['sgd']\n")
    assert main(["makebatch", "--dry-run"]) == 1
    assert "not valid JSON" in capsys.readouterr().err


def test_a_json_template_without_mrl_lines_is_checked(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = json_project(project, '{"name": {{ name }}}\n')
    assert main(["makebatch", "--set", "name=x"]) == 1
    assert "param name rendered as x" in capsys.readouterr().err
    assert not (exp / "001").exists()


def test_a_toml_template_with_a_bare_string_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tomllib")
    toml = "lr = {{ lr }}\nopt = {{ opt }}\n# MRL:grid['lr'] = [0.1]\n# MRL:grid['opt'] = ['sgd']\n"
    exp = json_project(project, toml, name="conf.toml")
    assert main(["makebatch"]) == 1
    err = capsys.readouterr().err
    assert "conf.toml: line 2: the rendered file is not valid TOML" in err and "{{ opt | tojson }}" in err
    (exp / "conf.toml").write_text((exp / "conf.toml").read_text().replace("{{ opt }}", "{{ opt | tojson }}"))
    assert main(["makebatch"]) == 0


def test_a_yaml_template_is_parsed_when_pyyaml_is_installed(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("yaml")
    exp = json_project(
        project,
        "opt: {{ opt }}\nlr: {{ lr }}\n# MRL:grid['opt'] = ['a: b']\n# MRL:grid['lr'] = [1]\n",
        name="conf.yaml",
    )
    assert main(["makebatch"]) == 1
    err = capsys.readouterr().err
    assert "conf.yaml: line 1: the rendered file is not valid YAML" in err and "param opt rendered as a: b" in err
    (exp / "conf.yaml").write_text("tagged: !custom x\nopt: {{ opt | tojson }}\n# MRL:grid['opt'] = ['a: b']\n")
    assert main(["makebatch"]) == 0  # syntax only: a custom tag is fine


@pytest.mark.parametrize(
    ("grid", "shown", "read"),
    [("['yes', 'no']", "yes", "a boolean"), ("[None]", "None", "the string 'None'"), ("['off']", "off", "a boolean")],
)
def test_a_yaml_template_whose_bare_value_yaml_reads_as_another_is_refused_naming_param_and_fix(
    project: Path, capsys: pytest.CaptureFixture[str], grid: str, shown: str, read: str
) -> None:
    # valid YAML, so the syntax check passed, but PyYAML reads `flag: yes` as True and
    # `flag: None` as "None": the run's config held another value than its params record
    yaml = pytest.importorskip("yaml")
    template = (
        "lr: {{ lr }}\nname: run_{{ flag }}\nflag: {{ flag }}\n# MRL:grid['flag'] = GRID\n# MRL:grid['lr'] = [1]\n"
    )
    exp = json_project(project, template.replace("GRID", grid), name="conf.yaml")
    before = listing(exp)
    assert main(["makebatch"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"mrl: error: conf.yaml: line 3: param flag rendered as {shown}, which YAML reads as {read}")
    assert "{{ flag | tojson }}" in err and err.count("\n") == 1 and listing(exp) == before
    (exp / "conf.yaml").write_text(
        (exp / "conf.yaml").read_text().replace("flag: {{ flag }}", "flag: {{ flag | tojson }}")
    )
    assert main(["makebatch"]) == 0
    values = [yaml.safe_load((d / "conf.yaml").read_text())["flag"] for d in sorted(exp.glob("00*"))]
    assert values == list(eval(grid))  # noqa: S307 (the test's own literal)


def test_a_yaml_template_of_booleans_numbers_and_words_is_not_refused(project: Path) -> None:
    pytest.importorskip("yaml")
    exp = json_project(
        project,
        "on: {{ on }}\nlr: {{ lr }}\nopt: {{ opt }}\n# MRL:grid['on'] = [True, False]\n"
        "# MRL:grid['lr'] = [0.1, 2]\n# MRL:grid['opt'] = ['adam']\n",
        name="conf.yaml",
    )
    assert main(["makebatch"]) == 0 and len(list(exp.glob("00*"))) == 4


def test_a_json_template_whose_rendering_changes_line_count_names_the_rendered_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    json_project(
        project,
        "{\n{% for i in range(3) %}\"k{{ i }}\": 1,\n{% endfor %}\"opt\": {{ opt }}}\n// MRL:grid['opt'] = ['x']\n",
    )
    assert main(["makebatch"]) == 1
    assert "line 5 of the rendered file" in capsys.readouterr().err


def test_a_flag_style_script_runs_its_sweep_through_cli_args_and_kv_args(project: Path) -> None:
    (project / "flags.py").write_text("import json, sys\nopen('argv.json', 'w').write(json.dumps(sys.argv[1:]))\n")
    script = shlex.quote(sys.executable) + ' "{{ codeDir }}/flags.py"'
    command = script + " {{ params | cli_args }} -- {{ params | kv_args }}"
    set_cfg(project, confTemplFile=None, copyFiles=[], run={"command": command})
    commit_all(project, "a flag-style script")
    assert main(["new"]) == 0
    assert main(["makebatch", "--grid", "lr=0.1,0.01", "--grid", "hidden=16,64", "--set", "opt=adam w"]) == 0
    assert main(["run", "-j", "2"]) == 0
    argv = json.loads((project / EXP / "003" / "argv.json").read_text())
    assert argv == ["--lr", "0.01", "--hidden", "16", "--opt", "adam w", "--", "lr=0.01", "hidden=16", "opt=adam w"]


def test_a_dotted_param_written_as_an_attribute_gets_a_hint(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new_exp(project, "dropout = {{ model.dropout }}\n-- MRL:grid['model.dropout'] = [0.1]\n")
    assert main(["makebatch"]) == 1
    err = capsys.readouterr().err
    assert "'model' is undefined" in err and "{{ params['model.dropout'] }}" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("template", "args"),
    [
        ("{% for i in range(2) %}{{ i }}{% endfor %}\n-- MRL:grid['range'] = [1, 2]\n", ()),
        ("{% for x in [1] %}{{ loop }}{% endfor %}\n", ("--grid", "loop=1,2")),
        ("{{ self }}\n", ("--set", "self=3")),
        ("x\n-- MRL:defaults = {'lipsum': 1}\n-- MRL:grid['a'] = [1]\n", ()),
    ],
    ids=["range", "loop", "self", "lipsum"],
)
def test_a_param_named_like_a_jinja_global_is_refused_in_one_line_and_nothing_is_made(
    project: Path, template: str, args: tuple[str, ...]
) -> None:
    exp = new_exp(project, template)
    before = listing(exp)
    res = run_mrl("makebatch", *args, cwd=project)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith("mrl: error: ") and res.stderr.count("\n") == 1, res.stderr
    assert "has the name of one Jinja gives every template" in res.stderr and "rename it" in res.stderr
    assert listing(exp) == before


def test_a_dry_run_says_what_each_real_command_would_do_and_refuses_in_their_words(project: Path) -> None:
    # A bare --dry-run previewed "-replace would move them" while -replace itself refused
    # (a sub-experiment running): a preview must not promise what the real run refuses.
    exp = new_exp(project)
    assert run_mrl("makebatch", cwd=project).returncode == 0
    plain = run_mrl("makebatch", cwd=project)
    assert plain.returncode == 1
    refusal = plain.stderr.removeprefix("mrl: error: ").rstrip("\n")
    assert refusal.startswith(f"{exp} is already expanded (9 sub-experiment(s)): pass -replace")
    fd = os.open(exp / "004" / ".mrl.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as its runner holds it
        real = run_mrl("makebatch", "-replace", cwd=project)
        assert real.returncode == 1 and real.stderr.startswith(f"mrl: error: {exp / '004'} is running: ")
        dry = run_mrl("makebatch", "-replace", "--dry-run", cwd=project)
        assert (dry.returncode, dry.stdout, dry.stderr) == (1, "", real.stderr)
        preview = run_mrl("makebatch", "--dry-run", cwd=project)
        assert preview.returncode == 0, preview.stderr
        assert preview.stdout == (
            f"nothing to add: all 9 combinations exist in {exp}; that is what --extend would do "
            f"(-replace would refuse: {real.stderr.removeprefix('mrl: error: ').rstrip()}); "
            f"without -replace or --extend, makebatch refuses: {refusal}\n"
        )
    finally:
        os.close(fd)
    preview = run_mrl("makebatch", "--dry-run", cwd=project)
    assert preview.returncode == 0
    assert preview.stdout.splitlines()[0] == (
        f"would make 9 sub-experiment(s) 001..009 in {exp}, expanding the template as it is now; it has 9 now: "
        f"-replace would move them to .trash/, --extend would add 0; without -replace or --extend, "
        f"makebatch refuses: {refusal}"
    )
    assert not (exp / ".trash").exists()
