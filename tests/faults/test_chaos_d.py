"""Faults the tenth adversarial pass found (docs/dev-notes/wave2/chaos-d.md), each with real
mrl processes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.backends.contract import make_experiment
from tests.helpers.repo import commit_all, git, run_mrl


@pytest.mark.parametrize(
    "args",
    [
        ["status", ""],
        ["run", ""],
        ["cancel", ""],
        ["rerun", ""],
        ["table", ""],
        ["info", ""],
        ["verify", ""],
        ["info", "--verify", ""],
        ["makebatch", ""],
        ["analyze", ""],
    ],
)
@pytest.mark.parametrize("where", ["project", "experiment", "sub-experiment"])
def test_an_empty_experiment_is_an_error_not_the_current_folder(project: Path, args: list[str], where: str) -> None:
    # before: '' was Path('') = '.': `mrl status ''` named the experiment '.', and inside an
    # experiment or sub-experiment folder `mrl rerun "$EXP"` with EXP unset made a new experiment
    exp = make_experiment(project, [{"x": 1}], "echo ran")
    cwd = {"project": project, "experiment": exp.dir, "sub-experiment": exp.dir / "001"}[where]
    proc = run_mrl(*args, cwd=cwd)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("mrl: error: '' is not an experiment"), proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert sorted(p.name for p in exp.dir.parent.iterdir() if not p.name.startswith(".")) == [exp.dir.name]


@pytest.mark.parametrize("command", ["ls", "table"])
def test_an_empty_tag_to_select_by_is_an_error(project: Path, command: str) -> None:
    # before: `mrl ls --tag ''` said "no experiment is tagged  (tag one ...)", exit 0
    make_experiment(project, [{"x": 1}], "echo ran")
    proc = run_mrl(command, "--tag", "", cwd=project)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "bad tag ''" in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("cp", ["basedir", "repo"])
def test_a_copy_file_committed_as_a_symlink_out_of_the_repository_is_not_called_the_commits(
    project: Path, tmp_path: Path, cp: str
) -> None:
    # before: copied {"conf.lua": "basedir@<sha>"}, yet the commit holds only the link: what
    # was copied is the outside file as it is now (changed since, a second `mrl new` copies
    # other content under the same claim)
    outside = tmp_path / "shared-conf.lua"
    outside.write_text((project / "conf.lua").read_text())
    git(project, "rm", "-q", "conf.lua")
    os.symlink(outside, project / "conf.lua")
    commit_all(project, "conf.lua is a link to a shared file")
    proc = run_mrl("new", "-cp", cp, "linked conf", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert f"conf.lua: committed as a symlink to {outside}" in proc.stderr, proc.stderr
    record = json.loads((project / "output" / "0001" / ".mrl").read_text())
    assert not record["copied"]["conf.lua"].startswith("basedir@"), record["copied"]
    assert str(outside) in record["copied"]["conf.lua"]
    assert outside.read_text() == (project / "output" / "0001" / "conf.lua").read_text()


def test_a_copy_file_committed_as_a_symlink_inside_the_repository_is_the_commits(project: Path) -> None:
    (project / "cfg").mkdir()
    git(project, "mv", "conf.lua", "cfg/conf.lua")
    os.symlink("cfg/conf.lua", project / "conf.lua")
    commit_all(project, "conf.lua is a link into the repository")
    proc = run_mrl("new", "-cp", "basedir", "linked conf", cwd=project)
    assert proc.returncode == 0 and "symlink" not in proc.stderr, proc.stderr
    record = json.loads((project / "output" / "0001" / ".mrl").read_text())
    assert record["copied"]["conf.lua"].startswith("basedir@"), record["copied"]


HOOK_SIGNALLED_IN_A_CALLBACK = """\
import os, signal, time, weakref


def before_makebatch(mrl, args):
    class Held:
        pass

    def callback(ref):  # as importlib's module-lock callback: a signal taken in here is unraisable
        os.kill(os.getpid(), signal.SIG{sig})
        for _ in range(100000):
            pass

    held = Held()
    ref = weakref.ref(held, callback)
    del held
    time.sleep(5)
"""


@pytest.mark.parametrize("sig", ["TERM", "INT"])
def test_a_signal_taken_inside_a_weakref_callback_still_stops_the_command(project: Path, sig: str) -> None:
    # before: "Exception ignored in: <function ...callback>  Traceback ... KeyboardInterrupt"
    # on stderr, and makebatch went on and made the batch (seen: a SIGTERM at 0.1 s of
    # `mrl makebatch -replace`, inside importlib's _get_module_lock callback)
    import signal

    exp = make_experiment(project, [], "echo ran")
    (project / "mrl_hooks.py").write_text(HOOK_SIGNALLED_IN_A_CALLBACK.replace("{sig}", sig))
    cfg = json.loads((project / ".mrl.cfg").read_text())
    cfg["hooks"] = {"before_makebatch": {}}
    (project / ".mrl.cfg").write_text(json.dumps(cfg))
    proc = run_mrl("makebatch", "-replace", cwd=project)
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (130, -getattr(signal, f"SIG{sig}")), (proc.returncode, proc.stderr)
    assert not (exp.dir / "001").exists()


def test_a_symlink_planted_as_the_run_lock_is_not_followed_out_of_the_experiment(project: Path, tmp_path: Path) -> None:
    # before: .mrl.lock was opened with O_CREAT through the link: a dangling one made an
    # empty file at its target, outside the experiment (and an existing target was flocked)
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "echo ran > out.txt")
    outside = tmp_path / "outside" / "lock"
    outside.parent.mkdir()
    (exp.dir / "001" / ".mrl.lock").symlink_to(outside)
    proc = run_mrl("run", exp.name, cwd=project)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not outside.exists() and not (exp.dir / "001" / "out.txt").exists()
    assert f"{exp.dir / '001' / '.mrl.lock'} is a symlink, not mrl's lock file: remove it" in proc.stdout + proc.stderr
    assert (exp.dir / "002" / "out.txt").read_text() == "ran\n"  # the others run
    status = run_mrl("status", exp.name, cwd=project)
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    (exp.dir / "001" / ".mrl.lock").unlink()
    assert run_mrl("run", exp.name, cwd=project).returncode == 0
    assert (exp.dir / "001" / "out.txt").read_text() == "ran\n" and not outside.exists()
