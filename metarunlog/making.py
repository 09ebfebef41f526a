"""`mrl new`'s claim on the folder it is making, and what a folder without a record is.

`mrl new` creates `OUTDIR/<name>/` (mkdir: atomic, so two never share one) and at once
`OUTDIR/.mrl.making-<name>`: `{"pid", "host", "start", "token"}`, flock-ed (O_CLOEXEC: git
and its filters never inherit it) for as long as it fills the folder. It writes the record
`.mrl` last, then removes `.mrl.making-<name>`. The kernel drops the lock when the process
dies, even by SIGKILL, so a folder without a record whose `.mrl.making-<name>` nobody holds
was left by an `mrl new` that died before it finished: it is incomplete, and the commands
say so. (Beside the folder, not in it: the next `mrl new` finds them in the listing of OUTDIR
it reads anyway, with no look into each experiment.)

`token` (random) is in the name of every temp file that `mrl new` makes in the snapshot
store (`snapshot.take(owner=token)`). The next `mrl new` removes a dead maker's, and only
its (`clean_after_dead`): a live writer's temps carry another token, and a maker's lock
held means it is alive. It then moves the file into the folder as `.mrl.incomplete` (or
drops it, the folder gone), so that this is done once. Only this host's makers are judged:
over NFS another host's lock may not reach here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metarunlog import jsonio
from metarunlog.errors import CorruptRecord
from metarunlog.experiment import RECORD

MAKING = ".mrl.making"  # OUTDIR/.mrl.making-<name>
CLAIMING = ".mrl.claim-"  # OUTDIR/.mrl.claim-<token>: a claim being written (renamed to MAKING-<name>)
CLAIM_STALE_S = 600.0  # an unlocked .mrl.claim-* older than this was left by a dead mrl new
INCOMPLETE = ".mrl.incomplete"  # EXPDIR/.mrl.incomplete: a dead maker's claim, once its store temps went


def making_path(expdir: Path) -> Path:
    """Where the claim of the `mrl new` making `expdir` is."""
    return expdir.parent / f"{MAKING}-{expdir.name}"


@dataclass
class Claim:
    """This process's `.mrl.making-<name>` for the folder it makes: held until `release`."""

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
    locked under a temp name and renamed into place, so that `.mrl.making-<name>` is never
    seen unlocked or empty while its maker lives."""
    from metarunlog.jsonio import naming
    from metarunlog.procs import HOST, start_id

    while True:
        token = os.urandom(6).hex()
        tmp = expdir.parent / f"{CLAIMING}{token}"
        with naming(tmp):  # a full disk names the file
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            info = {"pid": os.getpid(), "host": HOST, "start": start_id(os.getpid()), "token": token}
            with naming(tmp):
                os.write(fd, json.dumps(info).encode())
            os.rename(tmp, making_path(expdir))
        except FileNotFoundError:  # taken for a dead one's (stopped past CLAIM_STALE_S before its flock)
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return Claim(making_path(expdir), fd, token)


@dataclass(frozen=True)
class Unmade:
    """A folder named like an experiment that has no record (yet)."""

    live: bool  # an `mrl new` may be making it now (listed once its record is written)
    why: str  # what it is, for a message after "has no .mrl record"


def unmade(expdir: Path) -> Unmade:
    """What the record-less folder `expdir` is: being made, or incomplete (and why)."""
    from metarunlog.locks import is_flocked
    from metarunlog.procs import HOST

    making = making_path(expdir)
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
        names = os.listdir(expdir)
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
        data = jsonio.read_json(path)
    except (OSError, CorruptRecord):
        return None
    return data if isinstance(data, dict) else None


def clean_after_dead(outdir: Path, names: list[str], store: Path) -> None:
    """For each claim among `names` (OUTDIR's listing) of a dead `mrl new` of this host (a
    `.mrl.making-<name>` nobody holds): remove the temp files it made in the snapshot
    store, then move the claim into its folder as `.mrl.incomplete` (drop it when that
    folder is gone, or complete: killed between writing the record and removing it). A
    claim a dead one was still writing (`.mrl.claim-<token>`) is dropped."""
    from metarunlog import snapshot
    from metarunlog.locks import is_flocked
    from metarunlog.procs import HOST

    prefix = f"{MAKING}-"
    for name in names:
        path = outdir / name
        if name.startswith(CLAIMING):
            # one a live mrl new has just made is unlocked for an instant (open, then flock)
            with contextlib.suppress(FileNotFoundError):
                if time.time() - path.stat().st_mtime > CLAIM_STALE_S and not is_flocked(path):
                    os.unlink(path)
            continue
        if not name.startswith(prefix):
            continue
        info = _read(path)
        if info is None or info.get("host") != HOST or not isinstance(info.get("token"), str) or is_flocked(path):
            continue  # another host's, or its maker lives
        snapshot.remove_temps(store, info["token"])
        expdir = outdir / name[len(prefix) :]
        # FileNotFoundError: gone meanwhile, or another mrl new did it. Any other OSError (a
        # folder not ours to write: another user's in a shared outdir) leaves the claim as it
        # is, read by `unmade` as before: tidying another's leftovers never stops this mrl new.
        with contextlib.suppress(OSError):
            if expdir.is_dir() and not (expdir / RECORD).exists():
                jsonio.write_json(expdir / INCOMPLETE, info)
            os.unlink(path)
