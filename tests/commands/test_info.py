"""mrl info: an experiment's record, folder and sub-experiment count (as text, --json or
--path); --verify is `mrl verify` (tests/commands/test_verify.py, tests/test_snapshot.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metarunlog.main import main
from tests.backends.contract import make_experiment
from tests.helpers.repo import commit_all, git, run_mrl, set_cfg


def new(description: str = "") -> None:
    assert main(["new", "-cp", "no", *([description] if description else [])]) == 0


def test_info_prints_every_record_field_with_the_folder_count_and_done(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = make_experiment(project, [{"lr": 0.1}, {"lr": 0.2}], "true")
    capsys.readouterr()
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    fields = {k.strip(): v for k, _, v in (line.partition(" : ") for line in lines)}
    assert fields["path"] == str(exp.dir)
    assert fields["gitHash"] == git(project, "rev-parse", "HEAD").strip()
    assert fields["description"] == "made by a test"
    assert fields["subExperiments"] == "2" and fields["done"] == "False"
    widths = {line.index(" : ") for line in lines}
    assert len(widths) == 1  # the keys are padded to one column


def test_info_shows_lists_and_dicts_as_json_and_none_as_empty(project: Path, capsys) -> None:
    new()
    capsys.readouterr()
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    dirty = next(line for line in out.splitlines() if line.startswith("dirtyFiles"))
    assert dirty.split(" : ")[1] == "[]"
    line = next(line for line in out.splitlines() if line.startswith("snapshot"))
    assert json.loads(line.split(" : ", 1)[1])["mode"] in ("link", "copy")
    copied_from = next(line for line in out.splitlines() if line.startswith("copiedFrom"))
    assert copied_from.rstrip().endswith(":")  # None shows as nothing, not "None"


def test_info_json_is_the_record_plus_path_count_and_done(project: Path, capsys) -> None:
    exp = make_experiment(project, [{"lr": 0.1}], "true")
    (exp.dir / ".mrl.done").write_text("")
    capsys.readouterr()
    assert main(["info", "--json", str(exp.id)]) == 0
    data = json.loads(capsys.readouterr().out)
    record = json.loads((exp.dir / ".mrl").read_text())
    assert data == {"path": str(exp.dir), **record, "subExperiments": 1, "done": True}


def test_info_path_prints_only_the_folder(project: Path, capsys) -> None:
    new()
    new()
    capsys.readouterr()
    assert main(["info", "--path", "1"]) == 0
    assert capsys.readouterr().out == f"{project / 'output' / '0001'}\n"


def test_info_says_when_no_run_block_is_pinned_and_shows_a_pinned_one(project: Path, capsys) -> None:
    new()
    capsys.readouterr()
    assert main(["info"]) == 0
    run = [line for line in capsys.readouterr().out.splitlines() if line.startswith("run ")]
    assert run == ["run              : (none pinned: the project's .mrl.cfg run block applies)"]
    set_cfg(project, run={"command": "python train.py"})
    commit_all(project, "a run block")
    new()
    capsys.readouterr()
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run"]["command"] == "python train.py"


def test_info_defaults_to_the_experiment_the_cwd_is_in(project: Path, capsys, monkeypatch) -> None:
    new("first")
    new("second")
    monkeypatch.chdir(project / "output" / "0001" / "code")
    capsys.readouterr()
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["description"] == "first"


def test_info_of_a_missing_experiment_is_one_error_line_and_exit_1(project: Path) -> None:
    proc = run_mrl("info", "7", cwd=project)
    assert proc.returncode == 1
    assert proc.stderr.startswith("mrl: error: no experiment 7 in ") and proc.stderr.count("\n") == 1


def test_info_of_a_corrupt_record_names_the_file(project: Path) -> None:
    new()
    (project / "output" / "0001" / ".mrl").write_text('{"expId": 1,')
    proc = run_mrl("info", cwd=project)
    assert proc.returncode == 1
    assert "corrupt record" in proc.stderr and str(project / "output" / "0001" / ".mrl") in proc.stderr
    assert "Traceback" not in proc.stderr


def test_info_shows_the_run_keys_an_expdir_cfg_sets_over_the_pinned_block(project: Path, capsys) -> None:
    """What runs is the pinned block with EXPDIR/.mrl.cfg over it: info says both."""
    set_cfg(project, run={"command": "python train.py"})
    commit_all(project, "a run block")
    new()
    (project / "output" / "0001" / ".mrl.cfg").write_text(json.dumps({"run": {"command": "echo other", "jobs": 2}}))
    capsys.readouterr()
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("run "))
    assert '"command": "python train.py"' in lines[at]
    key, _, value = lines[at + 1].partition(" : ")
    assert key.strip() == "runOverride"
    assert value == ('{"command": "echo other", "jobs": 2} (from 0001/.mrl.cfg: over the pinned run block, what runs)')
    assert main(["info", "--json"]) == 0
    assert "runOverride" not in json.loads(capsys.readouterr().out)  # --json is the record


def test_info_of_exp_slash_sub_shows_that_sub_experiments_folder_params_and_status(project: Path) -> None:
    exp = make_experiment(project, [{"lr": 0.1}, {"lr": 0.2}], "true")
    assert run_mrl("run", cwd=project).returncode == 0
    for ref in ("1/2", "0001/002", "last/2", str(exp.dir / "002")):
        res = run_mrl("info", ref, cwd=project)
        assert res.returncode == 0, res.stderr
        fields = {k.strip(): v for k, _, v in (line.partition(" : ") for line in res.stdout.splitlines())}
        assert fields["path"] == str(exp.dir / "002") and fields["subExpId"] == "2", ref
        assert fields["params"] == '{"lr": 0.2}' and fields["state"] == "done" and fields["exitCode"] == "0"
    data = json.loads(run_mrl("info", "1/1", "--json", cwd=project, check=True).stdout)
    assert data["params"] == {"lr": 0.1} and data["state"] == "done" and data["experiment"] == "0001"
    assert run_mrl("info", "1/1", "--path", cwd=project, check=True).stdout == f"{exp.dir / '001'}\n"


def test_info_of_a_sub_that_never_ran_says_pending(project: Path) -> None:
    make_experiment(project, [{"lr": 0.1}], "true")
    data = json.loads(run_mrl("info", "1/1", "--json", cwd=project, check=True).stdout)
    assert data["state"] == "pending" and data["params"] == {"lr": 0.1}


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("1/1-2",), "mrl info shows one sub-experiment, and 0001/1-2 names 2: give one, like `mrl info 1/1`"),
        (("1/9",), "no sub-experiment 9 in experiment 0001 (it has 1-2)"),
        (("1/1", "--verify"), "--verify checks an experiment's code/, which its sub-experiments share"),
    ],
)
def test_info_of_several_or_missing_subs_is_one_error_line_saying_what_to_type(
    project: Path, args: tuple[str, ...], said: str
) -> None:
    make_experiment(project, [{"lr": 0.1}, {"lr": 0.2}], "true")
    res = run_mrl("info", *args, cwd=project)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith("mrl: error: ") and said in res.stderr and len(res.stderr.splitlines()) == 1
