"""An `mrl new` killed with SIGKILL half-way: the folder it leaves is shown as incomplete
(never hidden, never a traceback), the next `mrl new` numbers past it, and what it left in
the snapshot store is removed by the next `mrl new`, never what a live `mrl new` is writing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from metarunlog.making import INCOMPLETE, making_path
from tests.helpers.processes import start_mrl, wait_for
from tests.helpers.repo import commit_all, git, run_mrl


@pytest.fixture
def slow_checkout(project: Path) -> Path:
    """`project` with a file whose checkout (a smudge filter) blocks while BLOCK exists,
    touching `marker` first: an `mrl new` then waits inside its snapshot of code/."""
    (project / ".gitattributes").write_text("slow.txt filter=slow\n")
    (project / "slow.txt").write_text("slow\n")
    block, marker = project.parent / "BLOCK", project.parent / "marker"
    git(project, "config", "filter.slow.clean", "cat")
    git(project, "config", "filter.slow.smudge", f"if [ -e '{block}' ]; then touch '{marker}'; sleep 60; fi; cat")
    commit_all(project, "a slow checkout")
    assert run_mrl("new", "first", cwd=project).returncode == 0  # fills the store
    return project


def blocked_new(project: Path) -> subprocess.Popen[str]:
    """An `mrl new` of its own session, waiting in its checkout."""
    block, marker = project.parent / "BLOCK", project.parent / "marker"
    block.touch()
    marker.unlink(missing_ok=True)
    proc = start_mrl("new", "blocked", cwd=project)
    wait_for(marker.exists, what="mrl new inside its checkout")
    return proc


def killed_new(project: Path) -> Path:
    proc = blocked_new(project)
    os.killpg(proc.pid, signal.SIGKILL)  # mrl new, its git and the filter: started by this test
    proc.communicate()
    return project / "output" / f"{len(list((project / 'output').glob('0*'))):04d}"


def test_a_folder_left_by_a_killed_mrl_new_is_shown_incomplete_by_ls_status_and_info(slow_checkout: Path) -> None:
    # `mrl ls` hid it, and `mrl status`/`mrl info` (it is the newest) said "it is being
    # created", as of a live mrl new, with no word of what to do
    project = slow_checkout
    left = killed_new(project)
    assert left.name == "0002" and not (left / ".mrl").exists() and (left / "code").is_dir()
    ls = run_mrl("ls", cwd=project)
    assert ls.returncode == 0, ls.stderr
    assert ls.stdout.splitlines()[0] == "!! 0002\t(incomplete: no .mrl record; `mrl info 0002` says why)"
    listed = json.loads(run_mrl("ls", "--json", cwd=project).stdout)
    assert listed[0]["name"] == "0002" and "mrl new (pid" in listed[0]["incomplete"]
    for args in (("info", "2"), ("status", "2"), ("info",), ("status",)):
        res = run_mrl(*args, cwd=project)
        assert res.returncode == 1 and len(res.stderr.splitlines()) == 1, (args, res.stderr)
        assert res.stderr.startswith(f"mrl: error: {left} has no .mrl record: it is incomplete: mrl new (pid ")
        assert f"stopped before it finished; remove it with `rm -rf {left}`" in res.stderr
    (project.parent / "BLOCK").unlink()
    made = run_mrl("new", "after", cwd=project)
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines()[-1] == str(project / "output" / "0003")
    assert os.readlink(project / "last") == os.path.join("output", "0003")
    assert run_mrl("info", "--path", cwd=project).stdout == f"{project / 'output' / '0003'}\n"
    assert [line.split("\t")[0] for line in run_mrl("ls", cwd=project).stdout.splitlines()] == [
        "** 0003",
        "!! 0002",
        "** 0001",
    ]


def test_the_next_mrl_new_removes_a_dead_mrl_news_store_temps_and_never_a_live_ones(slow_checkout: Path) -> None:
    # a temp a killed mrl new made in the store stayed there for good, and nothing told its
    # temps from those of a live mrl new
    project = slow_checkout
    store = project / "output" / ".mrl.objects"
    dead = killed_new(project)
    live = project / "output" / "0003"

    def left_by(expdir: Path) -> Path:
        """What its mrl new would leave killed between linking a temp and renaming it over its key."""
        token = json.loads(making_path(expdir).read_text())["token"]
        temp = store / "ab" / f"{'c' * 38}.{token}.tmp"
        temp.parent.mkdir(exist_ok=True)
        temp.write_text("half-stored\n")
        (store / f".probe.{token}").write_text("")
        return temp

    dead_temp = left_by(dead)
    live_proc = blocked_new(project)  # it cleans up after the dead one first
    try:
        wait_for(making_path(live).exists, what="the live mrl new's claim")
        assert not dead_temp.exists() and not list(store.glob(f".probe.{dead_temp.name.split('.')[1]}"))
        assert (dead / INCOMPLETE).is_file() and not making_path(dead).exists()
        live_temp = left_by(live)
        said = run_mrl("info", "3", cwd=project)
        assert said.returncode == 1 and "mrl new (pid " in said.stderr and "is making it; wait" in said.stderr
        assert [line.split("\t")[0] for line in run_mrl("ls", cwd=project).stdout.splitlines()][:1] == ["!! 0002"]
        (project.parent / "BLOCK").unlink()  # the next mrl new is not blocked (the live one sleeps on)
        made = run_mrl("new", "third", cwd=project)
        assert made.returncode == 0, made.stderr
        assert made.stdout.splitlines()[-1] == str(project / "output" / "0004")
        assert live_temp.read_text() == "half-stored\n"  # its writer lives: never touched
        assert making_path(live).is_file()
        # once cleaned up after, the dead one is still incomplete, and says so
        res = run_mrl("status", "2", cwd=project)
        assert "it is incomplete: mrl new (pid " in res.stderr, res.stderr
    finally:
        os.killpg(live_proc.pid, signal.SIGKILL)
        live_proc.communicate()
    # killed too: its temps go with the next mrl new
    assert run_mrl("new", "fifth", cwd=project).returncode == 0
    assert not live_temp.exists() and (live / INCOMPLETE).is_file()


def test_a_complete_experiment_keeps_no_claim(project: Path) -> None:
    assert run_mrl("new", "x", cwd=project).returncode == 0
    assert sorted(p.name for p in (project / "output" / "0001").iterdir() if p.name.startswith(".mrl")) == [
        ".mrl",
        ".mrl.note",
    ]
    assert not [p.name for p in (project / "output").iterdir() if p.name.startswith((".mrl.making", ".mrl.claim"))]


def test_the_claim_of_a_dead_mrl_new_whose_folder_was_removed_is_dropped(slow_checkout: Path) -> None:
    project = slow_checkout
    dead = killed_new(project)
    token = json.loads(making_path(dead).read_text())["token"]
    probe = project / "output" / ".mrl.objects" / f".probe.{token}"
    probe.write_text("")  # as if it was killed while probing the store
    subprocess.run(["rm", "-rf", str(dead)], check=True)  # as mrl info told the user
    (project.parent / "BLOCK").unlink()
    made = run_mrl("new", "again", cwd=project)
    assert made.returncode == 0 and made.stdout.splitlines()[-1] == str(dead), made.stderr  # its number is free
    assert not making_path(dead).exists() and (dead / ".mrl").is_file() and not (dead / INCOMPLETE).exists()
    assert not probe.exists()


def test_a_partly_removed_code_folder_is_named_by_verify(project: Path) -> None:
    # `rm -rf EXPDIR` stopped part-way (after mrl new's last write): what is gone is listed
    (project / "pkg").mkdir()
    for i in range(3):
        (project / "pkg" / f"m{i}.py").write_text(f"x = {i}\n")
    commit_all(project, "a package")
    assert run_mrl("new", "x", cwd=project).returncode == 0
    code = project / "output" / "0001" / "code"
    subprocess.run(["rm", "-rf", str(code / "pkg"), str(code / "train.py")], check=True)
    res = run_mrl("info", "--verify", "1", cwd=project)
    assert res.returncode == 1
    assert {line.split()[1] for line in res.stdout.splitlines() if line.startswith("missing")} >= {
        "train.py",
        "pkg/m0.py",
        "pkg/m2.py",
    }
    assert "0001: code/ differs from commit" in res.stderr and "missing" in res.stderr


def test_a_dead_mrl_news_folder_that_cannot_be_marked_never_stops_the_next_mrl_new(slow_checkout: Path) -> None:
    # a folder not ours to write (another user's in a shared outdir; here immutable, as root
    # may write anything else): writing its .mrl.incomplete failed every later mrl new
    project = slow_checkout
    dead = killed_new(project)
    (project.parent / "BLOCK").unlink()
    if subprocess.run(["chattr", "+i", str(dead)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported here")
    try:
        made = run_mrl("new", "again", cwd=project)
        assert made.returncode == 0, made.stderr
        assert "Traceback" not in made.stderr and (Path(made.stdout.splitlines()[-1]) / ".mrl").is_file()
        assert making_path(dead).exists()  # left for a later mrl new, once the folder can be written
    finally:
        subprocess.run(["chattr", "-i", str(dead)], check=True)


def _index_temps(folder: Path) -> set[str]:
    return {n for n in os.listdir(folder) if n.startswith("mrl-index-")}


def test_a_killed_mrl_news_temp_index_folder_is_removed_by_the_next_and_never_a_live_ones(
    slow_checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # git's throwaway index lives in a temp folder: a `kill -9` left `/tmp/mrl-index-*` for
    # good. Named by its maker (pid, start time, boot, pid namespace), a dead maker's goes
    # with the next `mrl new` or `mrl verify`; what mrl cannot prove dead stays.
    project = slow_checkout
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    proc = blocked_new(project)
    inside = _index_temps(tmp)
    assert len(inside) == 1, inside  # the killed one's, made while it snapshots code/
    os.killpg(proc.pid, signal.SIGKILL)  # mrl new, its git and the filter: started by this test
    proc.communicate()
    assert _index_temps(tmp) == inside  # left behind

    # this test's process (alive), as /proc names it
    pid, ticks = os.getpid(), Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")
    pidns = os.stat("/proc/self/ns/pid").st_ino
    tag = f"{pid}-{ticks}-{boot}-{pidns}"
    kept = {
        f"mrl-index-{tag}-live0001",  # a live mrl's
        f"mrl-index-{pid}-{ticks}-{'0' * 32}-{pidns}-oboot001",  # another machine's or boot's
        f"mrl-index-{pid}-{ticks}-{boot}-1-otherns1",  # another pid namespace's (a container)
        "mrl-index-k2j4h5g6",  # an older mrl's: no owner in its name
    }
    reused = f"mrl-index-{pid}-{int(ticks) - 1}-{boot}-{pidns}-reused01"  # its pid is another process's now
    for name in [*kept, reused]:
        (tmp / name).mkdir()
        (tmp / name / "index").write_bytes(b"x")
    (project.parent / "BLOCK").unlink()
    made = run_mrl("new", "after", cwd=project)
    assert made.returncode == 0, made.stderr
    assert _index_temps(tmp) == kept

    (tmp / reused).mkdir()  # `mrl verify` removes them too
    assert run_mrl("verify", cwd=project).returncode == 0
    assert _index_temps(tmp) == kept


def test_a_live_makers_temp_index_folder_stays_when_its_start_time_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A live pid whose /proc/PID/stat cannot be read (hidepid, EMFILE) is not proven dead:
    # its folder may be a running mrl's git index. Before, an unreadable start time read as
    # "another process now" and the live maker's folder was removed.
    from metarunlog import git as mrl_git
    from metarunlog import procs

    child = subprocess.Popen(["sleep", "60"])  # a live maker: started by this test
    try:
        start = procs.start_id(child.pid)
        assert start is not None
        boot, _, ticks = start.replace("-", "").partition(":")
        pidns = os.stat(f"/proc/{child.pid}/ns/pid").st_ino
        name = f"mrl-index-{child.pid}-{ticks}-{boot}-{pidns}-live0001"
        (tmp_path / name).mkdir()
        real = procs.start_id
        monkeypatch.setattr(procs, "start_id", lambda pid: None if pid == child.pid else real(pid))
        mrl_git.remove_dead_temps.cache_clear()
        assert mrl_git.remove_dead_temps(tmp_path) == []
        assert (tmp_path / name).is_dir()
    finally:
        child.kill()
        child.wait()
