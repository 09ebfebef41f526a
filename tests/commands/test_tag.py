"""`mrl tag EXP +NAME -NAME`, and selecting by tags in `mrl ls` and `mrl table`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metarunlog.main import main
from tests.helpers.records import done, make_exp
from tests.helpers.repo import GIT_ENV, REPO_ROOT, run_mrl


def record(exp_dir: Path) -> dict[str, object]:
    return json.loads((exp_dir / ".mrl").read_text())


def test_tags_are_added_and_removed_in_the_experiment_record(project: Path) -> None:
    exp = make_exp(project, [{"params": {"lr": 0.1}}])
    before = record(exp.dir)
    proc = run_mrl("tag", "1", "+baseline", "+paper", cwd=project)
    assert proc.returncode == 0 and proc.stdout == "0001: baseline paper\n"
    proc = run_mrl("tag", "1", "-paper", "+final", cwd=project)
    assert proc.returncode == 0, proc.stderr
    after = record(exp.dir)
    assert after["tags"] == ["baseline", "final"]
    assert {k: v for k, v in after.items() if k != "tags"} == before  # nothing else rewritten


def test_a_records_tag_with_control_characters_is_printed_escaped(project: Path) -> None:
    # before: a tag in the record with ESC or a newline (hand-edited, another mrl) reached
    # the terminal raw when `mrl tag` printed the experiment's tags
    exp = make_exp(project, [{"params": {"lr": 0.1}}])
    (exp.dir / ".mrl").write_text(json.dumps({**record(exp.dir), "tags": ["\x1b]0;title\x07t", "a\nb"]}))
    proc = run_mrl("tag", "1", "+paper", cwd=project)
    assert proc.returncode == 0 and proc.stdout == "0001: \\x1b]0;title\\x07t a\\nb paper\n", proc.stdout
    assert record(exp.dir)["tags"] == ["\x1b]0;title\x07t", "a\nb", "paper"]  # kept as they are


def test_tags_written_at_the_same_time_are_all_kept(project: Path) -> None:
    # Each `mrl tag` read the record and wrote it back unlocked: of 8 run at once, 3 survived.
    exp = make_exp(project, [{"params": {"lr": 0.1}}])
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-m", "metarunlog", "tag", "1", f"+t{i}"], cwd=project, env=env)
        for i in range(8)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    assert sorted(record(exp.dir)["tags"]) == sorted(f"t{i}" for i in range(8))


def test_a_tag_waits_for_a_makebatch_holding_the_record_and_keeps_what_it_wrote(project: Path) -> None:
    # makebatch reads the record, and writes it back with the batch, under the batch lock: a tag
    # written meanwhile was lost, or (tag after makebatch's read) the batch block was.
    from metarunlog import jsonio, ownership

    exp = make_exp(project, [{"params": {"lr": 0.1}}])
    with ownership.batch_lock(exp):
        held = record(exp.dir)
        proc = subprocess.Popen(
            [sys.executable, "-m", "metarunlog", "tag", "1", "+x"],
            cwd=project,
            env={**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)},
        )
        time.sleep(1.0)  # long enough for an unlocked tag to have written
        jsonio.write_json(exp.dir / ".mrl", {**held, "description": "rewritten by the lock holder"})
    assert proc.wait(timeout=120) == 0
    after = record(exp.dir)
    assert after["tags"] == ["x"] and after["description"] == "rewritten by the lock holder"


def test_a_leading_minus_tag_without_exp_is_a_change_of_the_default_experiment(project: Path) -> None:
    exp = make_exp(project, [{"params": {}}])
    assert run_mrl("tag", "+draft", "+x", cwd=project).returncode == 0
    proc = run_mrl("tag", "-draft", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert record(exp.dir)["tags"] == ["x"]


def test_removing_a_tag_it_lacks_warns_and_a_bad_name_is_an_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_exp(project, [{"params": {}}])
    assert main(["tag", "1", "-nope"]) == 0
    assert "mrl: warning: 0001 has no tag 'nope'" in capsys.readouterr().err
    assert main(["tag", "1", "+a b"]) == 1
    assert "bad tag '+a b'" in capsys.readouterr().err


@pytest.mark.parametrize("second", ["2", "2-3", "2,3"])
def test_a_second_experiment_is_refused_not_added_to_the_first_as_a_tag(project: Path, second: str) -> None:
    # `mrl tag 1 2 +both` tagged 0001 with "2" and "both" and left 0002 alone, silently
    exps = [make_exp(project, [{"params": {}}]) for _ in range(3)]
    proc = run_mrl("tag", "1", second, "+both", cwd=project)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("mrl: error: ") and len(proc.stderr.splitlines()) == 1
    assert f"'{second}'" in proc.stderr and "one experiment" in proc.stderr and "+NAME" in proc.stderr
    assert all("tags" not in record(e.dir) for e in exps)
    assert (
        run_mrl("tag", "1", "+2", "+both", cwd=project, check=True).stdout == "0001: 2 both\n"
    )  # a tag of digits, said so


def test_ls_shows_tags_and_lists_only_the_tagged_ones(project: Path) -> None:
    for _ in range(3):
        make_exp(project, [{"params": {}}])
    run_mrl("tag", "1", "+baseline", cwd=project, check=True)
    run_mrl("tag", "3", "+baseline", "+best", cwd=project, check=True)
    lines = run_mrl("ls", cwd=project, check=True).stdout.splitlines()
    assert lines[0].endswith("0003\t#baseline #best") and lines[1].endswith("0002")
    tagged = run_mrl("ls", "--tag", "baseline", cwd=project, check=True).stdout.splitlines()
    assert [line.split()[-3 if "best" in line else -2] for line in tagged] == ["0003", "0001"]


def test_table_tag_tabulates_the_tagged_experiments(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for acc in (0.5, 0.6, 0.7):
        make_exp(project, [{"params": {"lr": acc}, "status": done(), "metrics": {"acc": acc}}])
    assert main(["tag", "1", "+keep"]) == 0 and main(["tag", "3", "+keep"]) == 0
    capsys.readouterr()
    assert main(["table", "--tag", "keep", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["exp"], r["acc"]) for r in rows] == [("0001", 0.5), ("0003", 0.7)]
    assert main(["table", "--tag", "nothing"]) == 1
    assert "no experiment is tagged nothing" in capsys.readouterr().err


def test_help_after_the_experiment_is_the_help_not_a_bad_tag(project: Path) -> None:
    run_mrl("new", "x", cwd=project, check=True)
    proc = run_mrl("tag", "1", "--help", cwd=project)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: mrl tag"), proc.stderr
    proc = run_mrl("tag", "1", "+a", "--help", cwd=project)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: mrl tag"), proc.stderr
    assert "tags" not in json.loads((project / "output" / "0001" / ".mrl").read_text())
    # after `--` every word is a change, as the README says: `--help` there is a bad tag
    proc = run_mrl("tag", "1", "--", "--help", cwd=project)
    assert proc.returncode == 1 and "bad tag '--help'" in proc.stderr
