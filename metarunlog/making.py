"""`mrl new`'s claim on the folder it is making, and what a folder without a record is.

`mrl new` creates `OUTDIR/<id>/` (mkdir: atomic, so two never share one) and at once puts
`.mrl.making` in it: `{"pid", "host", "start", "token"}`, flock-ed (O_CLOEXEC: git and its
filters never inherit it) for as long as it fills the folder. It writes the record `.mrl`
last, then removes `.mrl.making`. The kernel drops the lock when the process dies, even by
SIGKILL, so a folder without a record whose `.mrl.making` nobody holds was left by an
`mrl new` that died before it finished: it is incomplete, and the commands say so.

`token` (random) is in the name of every temp file that `mrl new` makes in the snapshot
store (`snapshot.take(owner=token)`). The next `mrl new` removes a dead maker's, and only
its (`clean_after_dead`): a live writer's temps carry another token, and a maker's lock
held means it is alive. It then renames `.mrl.making` to `.mrl.incomplete`, so that this
is done once. Only this host's makers are judged: over NFS another host's lock may not
reach here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metarunlog.experiment import RECORD

MAKING = ".mrl.making"
INCOMPLETE = ".mrl.incomplete"  # a dead maker's .mrl.making, once its store temps were removed


@dataclass
class Claim:
    """This process's `.mrl.making` in the folder it makes: held until `release`."""

    path: Path
    fd: int
    token: str

    def release(self) -> None:
        """The record is written: the folder is complete (removed first, then unlocked)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self.fd)


def claim(expdir: Path) -> Claim:
    """Lock `expdir` (just made by this process) as being made. The file is written and
    locked under a temp name and renamed into place, so that `.mrl.making` is never seen
    unlocked or empty while its maker lives."""
    from metarunlog.procs import HOST, start_id

    token = os.urandom(6).hex()
    tmp = expdir / f"{MAKING}.{token}"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        info = {"pid": os.getpid(), "host": HOST, "start": start_id(os.getpid()), "token": token}
        os.write(fd, json.dumps(info).encode())
        os.rename(tmp, expdir / MAKING)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Claim(expdir / MAKING, fd, token)


@dataclass(frozen=True)
class Unmade:
    """A folder named like an experiment that has no record (yet)."""

    live: bool  # an `mrl new` may be making it now (listed once its record is written)
    why: str  # what it is, for a message after "has no .mrl record"


def unmade(expdir: Path) -> Unmade:
    """What the record-less folder `expdir` is: being made, or incomplete (and why)."""
    from metarunlog.locks import is_flocked
    from metarunlog.procs import HOST

    making = expdir / MAKING
    info = _read(making)
    if info is not None and is_flocked(making):
        return Unmade(True, f"mrl new (pid {info.get('pid')}) is making it; wait for it to finish")
    if info is not None and info.get("host") != HOST:
        return Unmade(True, f"mrl new on {info.get('host')} is making it, or was stopped there before it finished")
    remove = f"remove it with `rm -rf {shlex.quote(str(expdir))}` (nothing uses it)"
    dead = info or _read(expdir / INCOMPLETE)
    if dead is not None:
        return Unmade(False, f"it is incomplete: mrl new (pid {dead.get('pid')}) stopped before it finished; {remove}")
    try:
        names = [n for n in os.listdir(expdir) if not n.startswith(MAKING)]
    except OSError:
        names = []
    if not names:
        return Unmade(True, "it is being created, or is not an experiment made by mrl new")
    return Unmade(
        False,
        "it is incomplete: not made by mrl new, or an older mrl new or an rm -rf stopped part-way; "
        f"{remove} if it is not yours",
    )


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def clean_after_dead(exp_dirs: list[Path], store: Path) -> None:
    """For each of `exp_dirs` left by a dead `mrl new` of this host (`.mrl.making` that
    nobody holds): remove the temp files it made in the snapshot store, then mark it done
    (`.mrl.incomplete`). A complete one's `.mrl.making` (its maker killed between writing
    the record and removing it) is just removed."""
    from metarunlog import snapshot
    from metarunlog.locks import is_flocked
    from metarunlog.procs import HOST

    for expdir in exp_dirs:
        making = expdir / MAKING
        info = _read(making)
        if info is None or info.get("host") != HOST or not isinstance(info.get("token"), str):
            continue
        if is_flocked(making):
            continue  # its maker lives
        snapshot.remove_temps(store, info["token"])
        with contextlib.suppress(FileNotFoundError):  # another mrl new did it meanwhile
            if (expdir / RECORD).exists():
                os.unlink(making)
            else:
                os.rename(making, expdir / INCOMPLETE)
