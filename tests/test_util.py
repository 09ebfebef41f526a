"""metarunlog/util.py: the original metarunlog's helpers for hook files written for it.
`sshify` is run through a real shell with stand-in `ssh` / `sshpass` programs that show
what they were given; `get_commit` in a real repository. The hook-file import of these is
in tests/test_original_compat.py."""

from __future__ import annotations

import datetime
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from metarunlog import util
from tests.helpers.repo import commit_all, git


class FrozenClock:
    """`datetime` as util sees it, stopped at one instant (the only thing not owned here)."""

    def __init__(self, at: datetime.datetime) -> None:
        at_ = at

        class Frozen(datetime.datetime):
            @classmethod
            def now(cls, tz: datetime.tzinfo | None = None) -> Frozen:  # type: ignore[override]
                return cls.fromisoformat(at_.isoformat())

        self.datetime = Frozen


@pytest.mark.parametrize(
    ("at", "sec", "ms", "text"),
    [
        (datetime.datetime(2016, 10, 7, 12, 3, 4, 567890), True, False, "2016-10-07T12:03:04"),
        (datetime.datetime(2016, 10, 7, 12, 3, 4, 567890), False, False, "2016-10-07T12:03"),
        (datetime.datetime(2016, 10, 7, 12, 3, 4, 567890), True, True, "2016-10-07T12:03:04.567890"),
        # the original dropped the seconds last, so with sec=False the microseconds go too
        (datetime.datetime(2016, 10, 7, 12, 3, 4, 567890), False, True, "2016-10-07T12:03"),
        # isoformat() leaves out a zero microsecond: ms=True has no fraction then, as before
        (datetime.datetime(2016, 10, 7, 12, 3, 4), True, True, "2016-10-07T12:03:04"),
    ],
)
def test_nowstring_formats_the_local_time_as_the_original_did(
    monkeypatch: pytest.MonkeyPatch, at: datetime.datetime, sec: bool, ms: bool, text: str
) -> None:
    monkeypatch.setattr(util, "datetime", FrozenClock(at))
    assert util.nowstring(sec=sec, ms=ms) == text


def test_nowstring_is_now_in_local_time() -> None:
    before = datetime.datetime.now().replace(microsecond=0)
    text = util.nowstring()
    after = datetime.datetime.now()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", text)
    assert before <= datetime.datetime.fromisoformat(text) <= after


@pytest.fixture
def fake_ssh(tmp_path: Path) -> dict[str, str]:
    """PATH with an `ssh` that runs its command here (as the remote shell would) after
    noting its argv, and an `sshpass` that notes its password and execs the rest."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.jsonl"
    note = f"import json, sys; open({str(log)!r}, 'a').write(json.dumps(sys.argv) + '\\n')"
    (bin_dir / "ssh").write_text(
        f"#!{sys.executable}\n{note}\nimport subprocess\n"
        "raise SystemExit(subprocess.call(['/bin/sh', '-c', sys.argv[2]]))\n"
    )
    (bin_dir / "sshpass").write_text(f"#!{sys.executable}\n{note}\nimport os\nos.execvp(sys.argv[3], sys.argv[3:])\n")
    for name in ("ssh", "sshpass"):
        (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "LOG": str(log)}


def run_shell(cmd: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", cmd],
        env={**os.environ, "PATH": env["PATH"]},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def calls(env: dict[str, str]) -> list[list[str]]:
    return [json.loads(line)[1:] for line in Path(env["LOG"]).read_text().splitlines()]


def test_sshify_runs_the_command_on_the_host_exactly_as_written(fake_ssh: dict[str, str], tmp_path: Path) -> None:
    cmd = "printf '%s|' \"a b\" '$HOME' \"it's\""
    proc = run_shell(util.sshify(cmd, "node7", None), fake_ssh, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "a b|$HOME|it's|"  # quoted once for the local shell, the remote's as written
    assert calls(fake_ssh) == [["node7", cmd]]


def test_nothing_of_the_command_or_password_runs_on_the_local_shell(fake_ssh: dict[str, str], tmp_path: Path) -> None:
    # the original pasted them inside double quotes: `$(...)` ran here, before ssh
    password = "p'a\"s$(touch pwned-by-password)"
    cmd = "echo $(touch ran-remotely) done"
    proc = run_shell(util.sshify(cmd, "gpu-01", password), fake_ssh, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "pwned-by-password").exists()
    assert calls(fake_ssh) == [["-p", password, "ssh", "gpu-01", cmd], ["gpu-01", cmd]]
    assert (tmp_path / "ran-remotely").exists() and proc.stdout == "done\n"  # by the "remote" shell


def test_the_verbose_copy_masks_the_password() -> None:
    shown = io.StringIO()
    cmd = util.sshify("nvidia-smi", "node7", "hunter2", shown)
    assert "hunter2" in cmd
    assert shown.getvalue() == "sshpass -p '***' ssh node7 nvidia-smi\n"
    plain = io.StringIO()
    assert util.sshify("ls", None, None, plain) == "ls" and plain.getvalue() == "ls\n"


def test_without_a_host_the_command_is_left_as_it_is() -> None:
    assert util.sshify("echo 'a b' | wc -c", None, None) == "echo 'a b' | wc -c"
    assert util.sshify("ls", "", "") == "ls"


def test_get_commit_is_the_short_hash_and_subject_of_head(git_repo: Path) -> None:
    (git_repo / "notes.txt").write_text("x\n")
    commit_all(git_repo, "tune  lr — the  second try")
    short, subject = util.get_commit()
    assert short == git(git_repo, "rev-parse", "--short", "HEAD").strip()
    assert subject == "tune lr — the second try"  # runs of spaces become one, as the original split it


def test_get_commit_outside_a_repository_raises_as_the_original_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(subprocess.CalledProcessError):
        util.get_commit()


def test_the_python2_decoders_give_back_what_json_read() -> None:
    text = '{"a": [1, {"b": "é"}], "c": {"d": null}}'
    assert json.loads(text, object_hook=util._decode_dict) == json.loads(text)
    data = [1, "x"]
    copy = util._decode_list(data)
    assert copy == data and copy is not data
