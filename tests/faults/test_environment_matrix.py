"""Cells of the environment-fault matrix (every command x closed/full streams, read-only
folders, a full disk, signals, odd config and odd input) that found a fault: each test
here failed before its fix. The whole matrix, with the cells that held, is in
docs/dev-notes/wave2/accept-l.md."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backends.contract import make_experiment
from tests.faults.conftest import fill
from tests.helpers.repo import GIT_ENV, REPO_ROOT, commit_all, run_mrl


@pytest.mark.parametrize("rerun", ["--force", "--failed"])
def test_a_rerun_that_cannot_start_a_read_only_sub_experiment_never_shows_its_old_record_as_this_runs(  # type: ignore[no-untyped-def]
    project: Path, read_only, rerun: str
) -> None:
    # 002 fails; then its folder is read-only: `run --force`/`--failed` cannot even lock it.
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], 'test "{{x}}" = 1 && echo ran > out.txt')
    assert run_mrl("run", cwd=project).returncode == 1
    if rerun == "--force":
        (exp.dir / ".mrl.cfg").write_text('{"run": {"command": "echo ran > out.txt"}}\n')
        assert run_mrl("run", "--failed", cwd=project).returncode == 0
    sub = read_only(exp.dir / "002")
    proc = run_mrl("run", rerun, cwd=project)
    # before: "[2/2] 002 done in 0.0s", "2 done", exit 0 (the earlier run's record, as if run now)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if " 002 " in ln)
    assert "002 not run: mrl could not record it: read-only file system" in line and str(sub) in line, proc.stdout
    assert "1 not run" in proc.stdout.splitlines()[-1], proc.stdout


def _lost(stream: str, how: str):  # type: ignore[no-untyped-def]
    """Popen keywords giving `stream` a /dev/full or a pipe whose reader is gone."""
    if how == "full":
        return {stream: open("/dev/full", "w")}  # noqa: SIM115 (closed with the process)
    r, w = os.pipe()
    os.close(r)
    return {stream: w}


def _mrl(*args: str, cwd: Path, **streams: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    kw: dict[str, object] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **streams}
    try:
        argv = [sys.executable, "-m", "metarunlog", *args]
        return subprocess.run(argv, cwd=cwd, env=env, text=True, timeout=120, **kw)  # type: ignore[call-overload, no-any-return]
    finally:
        for v in streams.values():
            if isinstance(v, int):
                os.close(v)
            elif hasattr(v, "close"):
                v.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("how", ["full", "closed-pipe"])
def test_quickstart_whose_output_is_lost_still_makes_the_whole_example(tmp_path: Path, how: str) -> None:
    # before: it stopped at its first line: nothing made, and exit 0 for the closed pipe
    proc = _mrl("quickstart", "demo", cwd=tmp_path, **_lost("stdout", how))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    warned = [ln for ln in proc.stderr.splitlines() if "lost the output" in ln]
    assert len(warned) == 1 and warned[0].endswith("quickstart goes on"), proc.stderr
    assert (tmp_path / "demo" / "output" / "0001" / ".mrl.done").exists()
    assert (tmp_path / "demo" / "output" / "0001" / "analysis" / "index.html").exists()


@pytest.mark.parametrize("how", ["full", "closed-pipe"])
def test_a_lost_stderr_never_ends_a_command_or_changes_its_exit_code(project: Path, how: str) -> None:
    # `mrl new` warns on stderr (an untracked file) before it prints the new folder's path;
    # before: /dev/full made it exit 1 without the path, a closed pipe exit 0 without it
    (project / "notes.txt").write_text("untracked\n")
    proc = _mrl("new", "x", cwd=project, **_lost("stderr", how))
    assert proc.returncode == 0
    assert proc.stdout.strip().splitlines()[-1] == str(project / "output" / "0001")
    exp = make_experiment(project, [{"x": 1}], "true")
    assert run_mrl("run", cwd=project).returncode == 0
    # `mrl table` notes "no metrics" on stderr after the table: before, exit 1 under /dev/full
    proc = _mrl("table", str(exp.id), cwd=project, **_lost("stderr", how))
    assert proc.returncode == 0 and "001" in proc.stdout


# A disk that fills up part-way: every amount of space left, a page at a time, so that each
# write the command makes is in turn the one that fails.
LEFT = [n * 4096 for n in range(0, 12)]


def _failed_honestly(proc: subprocess.CompletedProcess[str], inside: Path) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode == 0:
        return
    assert proc.returncode == 1, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mrl: error:")]
    assert len(errors) == 1 and "no space left on device" in errors[0], proc.stderr
    assert f": {inside}/" in errors[0], errors[0]  # names the file it could not write


def test_mrl_init_on_a_filling_disk_names_the_file_keeps_the_gitignore_and_leaves_no_broken_cfg(  # type: ignore[no-untyped-def]
    git_repo: Path, full_disk
) -> None:
    ours = "*.pyc\n/data/\n"
    (git_repo / ".gitignore").write_text(ours)
    commit_all(git_repo, "gitignore")
    disk = full_disk(git_repo, "1m")
    for left in LEFT:
        filler = fill(disk, left)
        proc = run_mrl("init", cwd=git_repo)
        filler.unlink()
        _failed_honestly(proc, git_repo)
        # before: .gitignore rewritten in place (emptied by a full disk) and .mrl.cfg left
        # empty, which every later mrl command refused as unparsable
        assert (git_repo / ".gitignore").read_text().startswith(ours)
        cfg = git_repo / ".mrl.cfg"
        assert not cfg.exists() or json.loads(cfg.read_text())["outdir"] == "output"
        if proc.returncode == 0:
            break
        assert run_mrl("ls", cwd=git_repo).returncode in (0, 1)
    else:
        pytest.fail("mrl init never succeeded")
    assert run_mrl("ls", cwd=git_repo).returncode == 0


def test_mrl_new_on_a_filling_disk_always_names_the_file_it_could_not_write(project: Path, full_disk) -> None:  # type: ignore[no-untyped-def]
    # before: the note (Path.write_text: the error comes at close) said only
    # "no space left on device (free some disk space and rerun)"
    assert run_mrl("new", "first", cwd=project).returncode == 0
    out = full_disk(project / "output", "4m")
    for left in LEFT:
        filler = fill(out, left)
        proc = run_mrl("new", "x", cwd=project)
        filler.unlink()
        _failed_honestly(proc, out)
        made = sorted(p.name for p in out.iterdir() if p.name.isdigit())
        assert made == (["0001", "0002"] if proc.returncode == 0 else ["0001"]), (left, made)
        if proc.returncode == 0:
            break


# `mrl ARGS` in a real process that sends itself SIGNAL at its Nth call of os.FUNC (as a
# kill or a closed terminal would reach it right there).
SIGNALLED_AT = """
import os, signal, sys
from metarunlog.main import main
func, n, sig = sys.argv[1], int(sys.argv[2]), getattr(signal, sys.argv[3])
real, count = getattr(os, func), [0]
def at(*a, **k):
    count[0] += 1
    if count[0] == n:
        os.kill(os.getpid(), sig)
    return real(*a, **k)
setattr(os, func, at)
sys.exit(main(sys.argv[4:]))
"""


def _signalled_at(project: Path, func: str, n: int, sig: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-c", SIGNALLED_AT, func, str(n), sig, *args]
    return subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120)


def _litter(d: Path) -> list[str]:
    return [p.name for p in d.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".mrl.batch-tmp")]


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_any_command_ended_by_sigterm_or_sighup_cleans_up_as_after_ctrl_c(project: Path, sig: str) -> None:
    # before: only `mrl new` did; tag left its record's temp file, makebatch its temp folder
    assert run_mrl("new", "x", cwd=project).returncode == 0
    exp = project / "output" / "0001"
    record = (exp / ".mrl").read_text()
    tag = _signalled_at(project, "write", 1, sig, "tag", "+x")  # its record's first write
    assert tag.returncode == -getattr(signal, sig), tag.stderr  # then it ends by that signal
    assert "Traceback" not in tag.stderr
    assert (exp / ".mrl").read_text() == record and not _litter(exp)
    made = _signalled_at(project, "mkdir", 3, sig, "makebatch", "--grid", "x=" + ",".join(map(str, range(20))))
    assert made.returncode == -getattr(signal, sig), made.stderr
    assert "Traceback" not in made.stderr
    assert not _litter(exp) and not list(exp.glob("0*")), list(exp.iterdir())
    assert "no sub-experiments" in run_mrl("status", cwd=project).stdout


@pytest.mark.parametrize("command", ["rerun", "reproduce"])
def test_a_rerun_ended_by_a_signal_leaves_no_experiment_without_its_batch(project: Path, command: str) -> None:
    # before: a SIGTERM after `mrl new`'s part (at `last`) left 0002 "rerun of 0001 (all)"
    # with no sub-experiments; a makebatch there would make the whole grid, not those runs
    make_experiment(project, [{"lr": 0.1, "wdecay": 1}, {"lr": 0.2, "wdecay": 1}], "true")
    out = project / "output"
    for n in range(1, 12):
        proc = _signalled_at(project, "replace", n, "SIGTERM", command, "1")
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode in (0, -signal.SIGTERM), proc.stderr
        made = out / "0002"
        if made.exists():  # only once its batch is made (then it is complete)
            assert sorted(p.name for p in made.glob("0*")) == ["001", "002"], (n, proc.stderr)
            assert "mrl makebatch" not in run_mrl("status", "2", cwd=project).stdout
            if proc.returncode == 0:
                break
            shutil.rmtree(made)
    else:
        raise AssertionError(f"mrl {command} never got to its end")


@pytest.mark.parametrize("args", [["tag", "+ü"], ["makebatch", "--set", "ü=1"]], ids=["tag", "param"])
def test_a_refused_non_ascii_name_is_said_as_not_ascii_not_as_not_a_letter(project: Path, args: list[str]) -> None:
    # before: "must start with a letter" / "NAME of letters" for ü, which is a letter
    assert run_mrl("new", "x", cwd=project).returncode == 0
    proc = run_mrl(*args, cwd=project)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "ASCII letter" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("copyFiles", [1]),
        ("confTemplFile", [1]),
        ("run", {"command": [1]}),
        ("run", {"after": [{}]}),
    ],
    ids=["copyFiles", "confTemplFile", "run.command", "run.after"],
)
def test_a_config_list_holding_a_non_string_is_one_error_line_naming_the_key(
    project: Path, key: str, value: object
) -> None:
    # before: accepted as a list, then makebatch and diff were a TypeError traceback
    assert run_mrl("new", "x", cwd=project).returncode == 0
    full = key if key != "run" else f"run.{next(iter(value))}"  # type: ignore[call-overload]
    cfg = json.loads((project / ".mrl.cfg").read_text())
    cfg[key] = {**cfg["run"], **value} if key == "run" else value  # type: ignore[dict-item]
    (project / ".mrl.cfg").write_text(json.dumps(cfg))
    for args in (["makebatch"], ["diff", "1", "1"], ["ls"]):
        proc = run_mrl(*args, cwd=project)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"key '{full}' must be a list of" in proc.stderr, proc.stderr


@pytest.mark.parametrize("outdir", ["", ".", " "])
def test_an_outdir_naming_the_project_folder_itself_is_refused_not_filled_with_experiments(
    project: Path, outdir: str
) -> None:
    # before: `mrl new` made 0001/ among the project's files (untracked in git's work tree)
    cfg = json.loads((project / ".mrl.cfg").read_text())
    cfg["outdir"] = outdir
    (project / ".mrl.cfg").write_text(json.dumps(cfg))
    commit_all(project, "outdir")
    for args in (["new", "x"], ["ls"]):
        proc = run_mrl(*args, cwd=project)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "key 'outdir'" in proc.stderr, proc.stderr
    assert not (project / "0001").exists()
