"""metarunlog/experiment.py: experiment and sub-experiment folders and their records, read
from real folders that `mrl new` made in a real git repository."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest

from metarunlog import jsonio
from metarunlog.errors import CorruptRecord
from metarunlog.experiment import format_regex, parse_id
from metarunlog.project import Project
from metarunlog.records import BatchRecord, Status, SubRecord
from metarunlog.states import JobState
from tests.backends.contract import make_experiment
from tests.helpers.repo import old_one_job_exp


@pytest.mark.parametrize(
    ("name", "fmt", "expected"),
    [
        ("0003", "{expId:04d}", 3),
        ("12345", "{expId:04d}", 12345),
        ("3", "{expId:04d}", None),  # not what the format makes of 3
        ("00003", "{expId:04d}", None),
        ("abcd", "{expId:04d}", None),
        ("run-7_a", "run-{expId}_a", 7),
        ("run-7_b", "run-{expId}_a", None),
        ("0003.bak", "{expId:04d}", None),
    ],
)
def test_parse_id_accepts_exactly_the_names_the_format_makes(name: str, fmt: str, expected: int | None) -> None:
    assert parse_id(name, fmt, "expId") == expected


def test_parse_id_of_a_sub_experiment_format_that_names_its_experiment_too() -> None:
    fmt = "e{expId}-s{subExpId:02d}"
    assert parse_id("e4-s07", fmt, "subExpId", expId=4) == 7
    assert parse_id("e5-s07", fmt, "subExpId", expId=4) is None  # another experiment's folder
    assert format_regex(fmt, "subExpId").match("e4-s07").group(1) == "07"


def test_sub_experiments_are_the_numbered_folders_in_numeric_order(project: Path) -> None:
    exp = make_experiment(project, [{"x": i} for i in range(1, 12)], "true")
    (exp.dir / "notes").mkdir()
    (exp.dir / "012").write_text("a file named like a sub-experiment")
    subs = exp.sub_experiments()
    assert [s.name for s in subs] == [f"{i:03d}" for i in range(1, 12)]
    assert [s.id for s in subs] == list(range(1, 12))
    assert subs[9].params == {"x": 10}
    assert subs[9].dir == exp.dir / "010" == exp.subexp_dir(10)


def test_a_sub_experiment_folder_made_by_hand_has_empty_params_and_a_warning(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exp = make_experiment(project, [{"x": 1}], "true")
    (exp.dir / "002").mkdir()
    with caplog.at_level(logging.WARNING, logger="metarunlog"):
        sub = exp.sub_experiments()[1]
        assert sub.params == {}
    assert "has no .mrl (made by hand?)" in caplog.text


def test_a_sub_experiment_without_a_status_file_is_pending_and_a_written_status_reads_back(project: Path) -> None:
    sub = make_experiment(project, [{"x": 1}], "true").sub_experiments()[0]
    assert sub.read_status() is None
    sub.write_status(Status(state=JobState.DONE, exit_code=0, attempts=1, command=["true"]))
    status = sub.read_status()
    assert status is not None and status.state is JobState.DONE and status.command == ["true"]
    assert json.loads(sub.status_path.read_text())["exitCode"] == 0
    assert sub.log_path == sub.dir / "run.log"


def test_a_status_file_that_is_not_an_object_reads_as_pending(project: Path) -> None:
    sub = make_experiment(project, [{"x": 1}], "true").sub_experiments()[0]
    sub.status_path.write_text("[1, 2]\n")
    assert sub.read_status() is None


def test_an_experiment_record_that_is_not_an_object_is_a_corrupt_record(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "true")
    (exp.dir / ".mrl").write_text("[]\n")
    exp = Project.find(project).load_exp(str(exp.id))
    with pytest.raises(CorruptRecord, match=r"corrupt record .*\.mrl: not a JSON object"):
        exp.record  # noqa: B018


def test_done_is_the_done_mark(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "true")
    assert not exp.is_done
    (exp.dir / ".mrl.done").write_text("")
    assert exp.is_done


def test_the_experiments_own_mrl_cfg_overrides_the_project(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "echo {{x}}")
    assert exp.cfg["run"]["command"] == "echo {{x}}"  # make_experiment's EXPDIR/.mrl.cfg
    jsonio.write_json(exp.dir / ".mrl.cfg", {"note_fn": "NOTES.md"})
    exp = Project.find(project).load_exp(str(exp.id))
    assert exp.note_path == exp.dir / "NOTES.md"
    assert exp.base_cfg["note_fn"] == ".mrl.note"


def test_write_record_rewrites_the_file_and_what_the_object_reads(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "true")
    exp.write_record(dataclasses.replace(exp.record, description="renamed", tags=["best"]))
    assert exp.record.description == "renamed"
    on_disk = json.loads((exp.dir / ".mrl").read_text())
    assert on_disk["description"] == "renamed" and on_disk["tags"] == ["best"]


def test_template_params_name_the_experiment_and_its_code(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "true")
    assert exp.template_params() == {"expId": exp.id, "expDir": str(exp.dir), "codeDir": str(exp.dir / "code")}


def test_the_fingerprint_follows_the_params_and_the_rendered_files(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "true")
    exp.write_record(dataclasses.replace(exp.record, batch=BatchRecord(n=2, templates=["conf.lua"])))
    a, b = Project.find(project).load_exp(str(exp.id)).sub_experiments()
    (a.dir / "conf.lua").write_text("x = 1\n")
    (b.dir / "conf.lua").write_text("x = 1\n")
    first = a.fingerprint()
    assert first != b.fingerprint()  # same file, other params
    (a.dir / "conf.lua").write_text("x = 10\n")
    assert a.fingerprint() != first
    jsonio.write_json(a.dir / ".mrl", SubRecord(1, {"x": 99}).to_json())
    assert a.fingerprint(fresh=True) != a.fingerprint()  # the object still holds the params it read


def test_a_one_job_experiment_of_an_earlier_mrl_is_its_own_only_sub_experiment(project: Path) -> None:
    exp_dir = old_one_job_exp(project, "lr = {{lr}}\n", "lr = 0.1\n", params={"lr": 0.1})
    exp = Project.find(project).load_exp(exp_dir.name)
    assert exp.is_single and exp.is_expanded
    [sub] = exp.sub_experiments()
    assert (sub.name, sub.id, sub.dir) == (".", 1, exp.dir)
    assert sub.params == {"lr": 0.1}
