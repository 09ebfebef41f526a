"""mrl run end to end: real commands in real sub-experiment folders, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from metarunlog.main import main
from metarunlog.progress import Progress
from tests.backends.contract import jobs_for, make_experiment
from tests.helpers.processes import alive, start_mrl, statuses, wait_for  # noqa: F401
from tests.helpers.repo import run_mrl


def test_run_runs_every_sub_experiment_of_a_grid_and_marks_the_experiment_done(project: Path, capsys) -> None:
    exp = make_experiment(project, [{"x": i} for i in range(1, 5)], "echo value {{x}} > out.txt")
    assert main(["run", "-j", "2"]) == 0
    st = statuses(exp.dir)
    assert sorted(st) == ["001", "002", "003", "004"]
    assert all(s["state"] == "done" and s["exitCode"] == 0 for s in st.values())
    assert (exp.dir / "003" / "out.txt").read_text() == "value 3\n"
    assert (exp.dir / ".mrl.done").exists()
    capsys.readouterr()
    main(["ls"])
    assert capsys.readouterr().out.startswith(f"   {exp.name}")  # no ** any more


def test_failed_reruns_only_the_failed_ones(project: Path) -> None:
    command = "echo ran >> ran.txt; test {{x}} != 2 -o -e ../fixed"
    exp = make_experiment(project, [{"x": i} for i in range(1, 4)], command)
    assert main(["run"]) == 1
    assert statuses(exp.dir)["002"]["state"] == "failed"
    assert not (exp.dir / ".mrl.done").exists()
    (exp.dir / "fixed").write_text("")
    assert main(["run", "--failed"]) == 0
    ran = {n: (exp.dir / n / "ran.txt").read_text().count("ran") for n in ("001", "002", "003")}
    assert ran == {"001": 1, "002": 2, "003": 1}
    assert statuses(exp.dir)["002"]["attempts"] == 2
    assert (exp.dir / ".mrl.done").exists()


def test_the_ones_left_out_are_said_to_miss_the_option_given(project: Path, capsys) -> None:
    # `mrl run --failed` said "skipping 1 not matching --failed/--pending"
    make_experiment(project, [{"x": 1}, {"x": 2}, {"x": 3}], "test {{x}} != 1")
    assert main(["run", "last", "1"]) == 1
    capsys.readouterr()
    assert main(["run", "--failed"]) == 1
    assert "skipping 2 not matching --failed\n" in capsys.readouterr().out
    assert main(["run", "--pending"]) == 0
    assert "skipping 1 not matching --pending\n" in capsys.readouterr().out


def test_done_ones_are_skipped_unless_force(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo ran >> ran.txt")
    assert main(["run"]) == 0
    assert main(["run"]) == 0
    assert (exp.dir / "001" / "ran.txt").read_text() == "ran\n"
    assert main(["run", "--force", "last", "2"]) == 0
    assert (exp.dir / "001" / "ran.txt").read_text() == "ran\n"
    assert (exp.dir / "002" / "ran.txt").read_text() == "ran\nran\n"


def test_a_selection_runs_only_those_ids(project: Path) -> None:
    exp = make_experiment(project, [{"x": i} for i in range(1, 7)], "true")
    assert main(["run", "1,4-5"]) == 0
    assert sorted(statuses(exp.dir)) == ["001", "004", "005"]
    assert main(["run", "last", "6"]) == 0
    assert sorted(statuses(exp.dir)) == ["001", "004", "005", "006"]


def test_an_unknown_id_in_the_selection_is_an_error_that_runs_nothing(project: Path, capsys) -> None:
    exp = make_experiment(project, [{"x": 1}], "true")
    assert main(["run", "1,7"]) == 1
    assert "no sub-experiment 7" in capsys.readouterr().err
    assert statuses(exp.dir) == {}


def test_pending_runs_only_the_ones_that_never_ran(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}, {"x": 3}], "echo ran >> ran.txt; test {{x}} != 1")
    assert main(["run", "1-2"]) == 1
    assert main(["run", "--pending"]) == 0
    assert (exp.dir / "001" / "ran.txt").read_text() == "ran\n"  # the failed one was not rerun
    assert statuses(exp.dir)["003"]["state"] == "done"


def test_resources_set_cuda_visible_devices_and_a_slot_never_runs_two_at_once(project: Path) -> None:
    exp = make_experiment(
        project,
        [{"x": i} for i in range(1, 10)],
        'echo "start $CUDA_VISIBLE_DEVICES {{x}}" >> ../events.txt; sleep 0.2; '
        'echo "end $CUDA_VISIBLE_DEVICES {{x}}" >> ../events.txt',
    )
    assert main(["run", "--resources", "0", "1", "1"]) == 0
    running: dict[str, int] = {"0": 0, "1": 0}
    most = {"0": 0, "1": 0}
    for line in (exp.dir / "events.txt").read_text().splitlines():
        kind, res, _ = line.split()
        running[res] += 1 if kind == "start" else -1
        most[res] = max(most[res], running[res])
    assert most == {"0": 1, "1": 2}
    assert {s["resource"] for s in statuses(exp.dir).values()} == {"0", "1"}


def test_retries_retry_a_failure_until_it_passes(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "echo try >> tries.txt; test $(wc -l < tries.txt) -ge 3")
    assert main(["run", "--retries", "2"]) == 0
    st = statuses(exp.dir)["001"]
    assert st["state"] == "done" and st["attempts"] == 3
    assert (exp.dir / "001" / "run.log").read_text().count("==== mrl attempt") == 3


def test_fail_fast_starts_nothing_after_the_first_failure(project: Path) -> None:
    exp = make_experiment(project, [{"x": i} for i in range(1, 5)], "test {{x}} != 1")
    assert main(["run", "-j", "1", "--fail-fast"]) == 1
    assert sorted(statuses(exp.dir)) == ["001"]


def test_an_undefined_variable_in_run_command_is_an_error_that_runs_nothing(project: Path, capsys) -> None:
    exp = make_experiment(project, [{"x": 1}], "echo {{nope}}")
    assert main(["run"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrl: error: run.command") and "nope" in err
    assert statuses(exp.dir) == {}


def test_a_failing_expression_in_run_command_is_one_error_line_not_a_traceback(project: Path) -> None:
    make_experiment(project, [{"x": 1}], "echo {{ x / 0 }}")
    proc = run_mrl("run", cwd=project)
    assert proc.returncode == 1 and proc.stderr.startswith("mrl: error: run.command in ")
    assert "ZeroDivisionError" in proc.stderr and "sub-experiment 001" in proc.stderr and "Traceback" not in proc.stderr


def test_run_without_run_command_says_where_to_set_it(project: Path, capsys) -> None:
    exp = make_experiment(project, [{"x": 1}], "true")
    (exp.dir / ".mrl.cfg").unlink()
    assert main(["run"]) == 1
    assert "run.command" in capsys.readouterr().err


def test_dry_run_prints_the_commands_and_writes_nothing(project: Path, capsys) -> None:
    exp = make_experiment(project, [{"lr": 0.1}, {"lr": 0.2}], ["prep {{subExpId}} {{subExpNum}}", "train --lr {{lr}}"])
    assert main(["run", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "001: prep 001 1\n001: train --lr 0.1\n002: prep 002 2\n002: train --lr 0.2" in out
    assert statuses(exp.dir) == {}


def test_a_failure_is_printed_with_the_tail_of_its_log(project: Path) -> None:
    make_experiment(project, [{"x": 1}], "echo the reason it broke; exit 4")
    res = run_mrl("run", cwd=project)
    assert res.returncode == 1
    assert "001 failed" in res.stdout and "exit code 4" in res.stdout
    assert "| the reason it broke" in res.stdout


def test_the_live_view_shows_counts_and_slots_on_a_terminal(project: Path, tmp_path: Path) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "true")
    jobs = jobs_for(exp)
    with open(tmp_path / "tty.txt", "w+") as stream:
        progress = Progress(jobs, ["0", "1"], stream=stream, live=True)
        progress.update(jobs, force=True)
        stream.seek(0)
        text = stream.read()
    assert "2 pending" in text and "slot 1 (resource 1): idle" in text


def test_git_in_a_step_never_reaches_the_project_repository(project: Path) -> None:
    # code/ has no .git, so git in a step climbed to the project's repository: a script
    # logging `git rev-parse HEAD` recorded the project's HEAD (commits past the pinned code
    # that ran), and `git checkout`/`git stash` in code/ acted on the user's work tree
    from tests.helpers.repo import commit_all, git

    exp = make_experiment(
        project,
        [{"x": 1}],
        [
            "cd {{codeDir}} && (git rev-parse HEAD || echo none) > $MRL_SUBEXP_DIR/head.txt",
            "cd {{codeDir}} && git checkout -q --detach HEAD~1 2> $MRL_SUBEXP_DIR/checkout.txt; true",
        ],
    )
    (project / "later.txt").write_text("a commit after mrl new\n")
    commit_all(project, "later")
    head = git(project, "rev-parse", "HEAD").strip()
    proc = run_mrl("run", str(exp.id), cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert head not in (exp.dir / "001" / "head.txt").read_text()
    assert "not a git repository" in (exp.dir / "001" / "checkout.txt").read_text()
    assert git(project, "rev-parse", "HEAD").strip() == head  # the user's HEAD never moved
    assert git(project, "symbolic-ref", "HEAD").strip() == "refs/heads/main"


def test_j_over_configured_resources_says_the_steps_get_no_gpu_of_their_own(project: Path) -> None:
    # run.resources ["0", "1"] and `mrl run -j 2`: -j wins (they are alternatives), so the
    # steps ran with CUDA_VISIBLE_DEVICES unset, every one on the first GPU, and nothing said so
    exp = make_experiment(
        project, [{"x": 1}, {"x": 2}], 'echo "${CUDA_VISIBLE_DEVICES-unset}" > cvd', resources=["0", "1"]
    )
    proc = run_mrl("run", "-j", "2", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert {(exp.dir / n / "cvd").read_text().strip() for n in ("001", "002")} == {"unset"}
    notes = [line for line in proc.stderr.splitlines() if "run.resources" in line]
    assert notes == [
        "mrl: note: -j 2 runs without run.resources (0 1): CUDA_VISIBLE_DEVICES is not set for the steps; "
        "`--resources 0 1` (or no -j) gives each slot its GPU"
    ], proc.stderr
    again = run_mrl("run", "--force", cwd=project)  # the configured slots: no note
    assert again.returncode == 0 and "run.resources" not in again.stderr
    assert {(exp.dir / n / "cvd").read_text().strip() for n in ("001", "002")} == {"0", "1"}


def test_an_interrupted_run_counts_the_ones_it_never_started_as_not_started_not_pending(project: Path) -> None:
    # `mrl run --force` of three done ones, Ctrl-C during the first: the summary said
    # "1 cancelled, 2 pending" while their records (and mrl status) say done
    exp = make_experiment(project, [{"x": i} for i in range(1, 4)], "echo $$ > pid.txt; sleep {{x}}0")
    for sub in exp.sub_experiments():
        (sub.dir / ".mrl.status").write_text(json.dumps({"state": "done", "exitCode": 0, "attempts": 1}))
    runner = start_mrl("run", "--force", "-j", "1", cwd=project)
    pid = exp.dir / "001" / "pid.txt"
    wait_for(lambda: pid.exists() and pid.read_text().strip(), what="the first job to start")
    runner.send_signal(signal.SIGINT)
    out, err = runner.communicate(timeout=30)
    assert runner.returncode == 130, err
    summary = out.splitlines()[-1]
    assert summary.endswith(": 1 cancelled, 2 not started"), summary
    assert [s["state"] for s in statuses(exp.dir).values()] == ["cancelled", "done", "done"]


def test_after_ctrl_c_a_step_still_running_is_named_with_how_to_kill_it(project: Path) -> None:
    # a step that traps SIGTERM (a checkpoint save, or one ignoring it) kept the runner
    # waiting after Ctrl-C with nothing said: it looked hung, and the second Ctrl-C that
    # kills it was only in the docs
    exp = make_experiment(project, [{"x": 1}], "trap 'sleep 3; exit 0' TERM; echo $$ > pid.txt; sleep 60 & wait")
    runner = start_mrl("run", cwd=project)
    pid = exp.dir / "001" / "pid.txt"
    wait_for(lambda: pid.exists() and pid.read_text().strip(), what="the step to start")
    runner.send_signal(signal.SIGINT)
    out, err = runner.communicate(timeout=30)
    assert runner.returncode == 130, err
    said = [line for line in err.splitlines() if "still stopping" in line]
    assert said == ["mrl: 1 step(s) still stopping after SIGTERM (001); Ctrl-C again kills them (SIGKILL)"], err


def test_a_run_started_under_nohup_ignores_the_hangup_as_nohup_asks(project: Path) -> None:
    # `nohup mrl run -j 2 &` then logging out: the run's own handlers replaced nohup's
    # SIG_IGN, so the hangup cancelled every step (exit 129) of the run meant to outlive it
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo $$ > pid.txt; sleep 2")
    nohup = lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)  # noqa: E731 (what nohup does)
    runner = start_mrl("run", "-j", "2", cwd=project, preexec_fn=nohup)
    pids = [exp.dir / n / "pid.txt" for n in ("001", "002")]
    wait_for(lambda: all(p.exists() and p.read_text().strip() for p in pids), what="both steps to start")
    runner.send_signal(signal.SIGHUP)
    out, err = runner.communicate(timeout=30)
    assert runner.returncode == 0, out + err
    assert [s["state"] for s in statuses(exp.dir).values()] == ["done", "done"]


def test_sigint_stops_every_child_and_marks_them_cancelled(project: Path) -> None:
    exp = make_experiment(project, [{"x": i} for i in range(1, 6)], "echo $$ > pid.txt; sleep 60 & wait")
    runner = start_mrl("run", "-j", "2", cwd=project)
    pid_files = [exp.dir / n / "pid.txt" for n in ("001", "002")]
    wait_for(lambda: all(p.exists() and p.read_text().strip() for p in pid_files), what="two jobs to start")
    children = [int(p.read_text()) for p in pid_files]
    runner.send_signal(signal.SIGINT)
    out, err = runner.communicate(timeout=30)
    assert runner.returncode == 130, err
    st = statuses(exp.dir)
    assert {n: s["state"] for n, s in st.items()} == {"001": "cancelled", "002": "cancelled"}
    wait_for(lambda: not any(alive(p) for p in children), timeout=5, what="children to die")
    # the `sleep` grandchildren went with their process group
    out = subprocess.run(["pgrep", "-f", "sleep 60"], capture_output=True, text=True).stdout.split()
    assert not [p for p in out if os.getpgid(int(p)) in children]


def test_after_kill_9_of_the_runner_status_says_stale_and_the_next_run_runs_them(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo $$ > pid.txt; sleep 1; echo finished")
    runner = start_mrl("run", "-j", "2", cwd=project)
    pid_files = [exp.dir / n / "pid.txt" for n in ("001", "002")]
    wait_for(lambda: all(p.exists() and p.read_text().strip() for p in pid_files), what="the jobs to start")
    # The step may echo its pid before the runner has recorded it: kill -9 only once both
    # records say running with the step's pid (else the record honestly says queued).
    wait_for(
        lambda: [(s.get("state"), bool(s.get("pid"))) for s in statuses(exp.dir).values()] == [("running", True)] * 2,
        what="the records to say running",
    )
    runner.kill()
    runner.wait()
    children = [int(p.read_text()) for p in pid_files]
    wait_for(lambda: not any(alive(p) for p in children), what="the orphaned steps to end")
    rows = json.loads(run_mrl("status", "--json", cwd=project, check=True).stdout)
    assert [r["state"] for r in rows] == ["stale", "stale"]
    assert [r["recordedState"] for r in rows] == ["running", "running"]
    assert main(["run"]) == 0
    st = statuses(exp.dir)
    assert all(s["state"] == "done" and s["attempts"] == 2 for s in st.values())


def test_two_runners_at_once_never_run_a_sub_experiment_twice(project: Path) -> None:
    exp = make_experiment(project, [{"x": i} for i in range(1, 9)], "echo $PPID >> runs.txt; sleep 0.2")
    runners = [start_mrl("run", "-j", "3", cwd=project) for _ in range(2)]
    for r in runners:
        out, err = r.communicate(timeout=60)
        assert r.returncode == 0, out + err
    for n in range(1, 9):
        assert len((exp.dir / f"{n:03d}" / "run.log").read_text().splitlines()) == 1 + 0  # one header, no output
        assert len((exp.dir / f"{n:03d}" / "runs.txt").read_text().splitlines()) == 1
    assert all(s["attempts"] == 1 and s["state"] == "done" for s in statuses(exp.dir).values())


@pytest.mark.parametrize("spec", ["3-1", "x", "1,,2"])
def test_a_malformed_selection_is_a_one_line_error(project: Path, spec: str, capsys) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}, {"x": 3}], "true")
    assert main(["run", "last", spec]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrl: error: bad ") and len(err.splitlines()) == 1
    assert statuses(exp.dir) == {}


def test_params_and_paths_reach_the_shell_quoted_as_one_argument_each(project: Path) -> None:
    values = ["a b", "x;touch pwned", "$(touch pwned)", "line1\nline2", "it's"]
    dump = "import json, sys; open('argv.json', 'w').write(json.dumps(sys.argv[1:]))"
    exp = make_experiment(
        project, [{"name": v} for v in values], f'{sys.executable} -c "{dump}" {{{{name}}}} "{{{{subExpDir}}}}"'
    )
    assert main(["run", "-j", "2"]) == 0
    for sub in exp.sub_experiments():
        assert json.loads((sub.dir / "argv.json").read_text()) == [sub.params["name"], str(sub.dir)]
    assert not list(project.rglob("pwned"))


def test_run_after_runs_once_the_run_ended_with_this_mrl_in_the_experiment_folder(project: Path) -> None:
    exp = make_experiment(
        project,
        [{"x": 1}, {"x": 2}],
        "echo {{x}} > out",
        after=["mrl status --json > status.json", "echo {{expId}} > after-ran"],
    )
    proc = run_mrl("run", str(exp.id), cwd=project, env={"PATH": "/usr/bin:/bin"})  # no mrl on PATH
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mrl: run.after:" in proc.stdout
    assert (exp.dir / "after-ran").read_text() == f"{exp.id}\n"
    assert [r["state"] for r in json.loads((exp.dir / "status.json").read_text())] == ["done", "done"]


def test_a_failing_run_after_makes_the_run_exit_1(project: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "true", after=["false", "touch never"])
    proc = run_mrl("run", str(exp.id), cwd=project)
    assert proc.returncode == 1 and "run.after failed" in proc.stderr
    assert not (exp.dir / "never").exists()


def test_slurm_only_options_on_a_local_run_are_one_warning_line(project: Path) -> None:
    # --pack and --slurm-opt were silently ignored by the local backend
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "true")
    got = run_mrl("run", "--pack", "2", "--slurm-opt=--mem=8G", cwd=project)
    assert got.returncode == 0, got.stderr
    warnings = [line for line in got.stderr.splitlines() if line.startswith("mrl: warning:")]
    assert warnings == [
        "mrl: warning: --slurm-opt, --pack only apply to `--backend slurm`: ignored by the local backend"
    ]
    assert all(s["state"] == "done" for s in statuses(exp.dir).values())
    plain = run_mrl("run", "--force", cwd=project)  # no Slurm option given: no word
    assert plain.returncode == 0 and "warning" not in plain.stderr, plain.stderr


def test_the_lines_after_a_run_name_at_most_twenty_sub_experiments_skipped_or_not_started(project: Path) -> None:
    # a packed Slurm task of 1,000 that hit its time limit said "not started" 999 times
    change = (
        "import json, pathlib, sys\n"
        "for p in pathlib.Path(sys.argv[1]).glob('*/.mrl'):\n"
        "    if p.parent.name != '001':\n"
        "        d = json.loads(p.read_text()); d['params']['x'] = 99; p.write_text(json.dumps(d))\n"
    )
    (project / "change.py").write_text(change)
    exp = make_experiment(
        project,
        [{"x": i} for i in range(1, 26)],
        f"[ {{{{subExpNum}}}} != 1 ] || python3 {project}/change.py {{{{expDir}}}}",
    )
    proc = run_mrl("run", str(exp.id), cwd=project)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    said = [line for line in proc.stderr.splitlines() if "changed after this run planned it" in line]
    assert len(said) == 20 and said[0].startswith("mrl: 002: "), proc.stderr
    assert f"mrl: ... and 4 more (`mrl status {exp.id}` shows each)" in proc.stderr, proc.stderr
    assert "24 skipped: changed after planning" in proc.stdout


def test_a_forced_run_its_backend_refuses_to_submit_keeps_the_experiment_done(project: Path, capsys) -> None:
    """A `--force` run to Slurm whose --slurm-opt is refused (exit 1, nothing submitted)
    removed .mrl.done: `mrl ls` said ** (not done) while every record said done."""
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "true")
    assert main(["run"]) == 0
    assert (exp.dir / ".mrl.done").exists()
    capsys.readouterr()
    assert main(["run", "--force", "--backend", "slurm", "--slurm-opt", "time=1"]) == 1
    assert "must start with '-'" in capsys.readouterr().err
    assert [s["state"] for s in statuses(exp.dir).values()] == ["done", "done"]
    assert (exp.dir / ".mrl.done").exists()
    main(["ls"])
    assert capsys.readouterr().out.startswith(f"   {exp.name}")


def test_a_selection_or_experiment_after_an_option_is_taken_as_if_written_before_it(project: Path) -> None:
    # `mrl run 1 --force 2` was "unrecognized arguments: 2": argparse fills positionals from
    # their first run only; now every word an option does not take is a positional
    exp = make_experiment(project, [{"x": i} for i in (1, 2, 3)], "echo {{x}} >> ran.txt")
    assert run_mrl("run", cwd=project).returncode == 0
    res = run_mrl("run", str(exp.id), "--force", "2", cwd=project)
    assert res.returncode == 0, res.stderr
    assert [(exp.dir / f"00{i}" / "ran.txt").read_text() for i in (1, 2, 3)] == ["1\n", "2\n2\n", "3\n"]
    other = make_experiment(project, [{"x": 9}], "echo {{x}} >> ran.txt")
    table = run_mrl("table", str(exp.id), "--json", str(other.id), cwd=project)
    assert table.returncode == 0, table.stderr
    assert sorted({r["exp"] for r in json.loads(table.stdout)}) == [exp.name, other.name]
    # -j takes its value; the word after it is the selection
    assert run_mrl("run", str(exp.id), "-j", "2", "3", "--force", cwd=project).returncode == 0
    assert (exp.dir / "003" / "ran.txt").read_text() == "3\n3\n"
    # one word too many is still one line naming it
    extra = run_mrl("run", str(exp.id), "2", "--force", "3", cwd=project)
    assert extra.returncode == 1 and extra.stderr.startswith("mrl: error: ") and len(extra.stderr.splitlines()) == 1
