"""Sub-experiments whose folder was removed while a run ran them, and never made again.

A sub-experiment's record lives in its folder: a step that removes its own folder (`rm -rf
"$MRL_SUBEXP_DIR"`) takes it along, and `mrl status` (whose rows come from the folders) had
no row for it at all. Two things stand in for the folder:

- while its step still runs: the live runner's plan (`EXPDIR/.mrl.owners/*.jobs`) names it,
  and /proc finds its step (`ownership.removed_folders_steps`);
- once the runner saw it gone at the end of its step: `EXPDIR/.mrl.gone/<name>.json`, what
  that runner knew of it (the record it was about to write: state, exit code, attempts,
  start, end), written by the runner (`record`).

`mrl status` shows each as a row (`gone`, or `running` while its step runs), `mrl run` and
`mrl table` say that it is not there and what to do: `mrl makebatch --extend` makes its
params again (as a new sub-experiment; it removes these files). A folder of that name made
again (by hand, a backup restored) is what counts: its file here is then no longer read.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metarunlog import jsonio

if TYPE_CHECKING:
    from metarunlog.experiment import Experiment, SubExperiment
    from metarunlog.records import Status

GONE = ".mrl.gone"
SHOWN = 5  # `mrl run` / `mrl table`: lines naming gone ones, then a count


@dataclass
class Gone:
    """One sub-experiment whose folder a run saw removed: what that run knew of it."""

    id: int
    name: str
    removed: str  # when the runner saw it gone (ISO)
    runner_pid: int | None  # the `mrl run` (or Slurm task) that ran it
    host: str
    last: Status | None  # the record the runner was about to write (None: none known)

    def note(self) -> str:
        """What `mrl status` says beside its row."""
        how = ""
        if self.last is not None:
            code = "" if self.last.exit_code is None else f", exit {self.last.exit_code}"
            end = f" at {self.last.end[:19].replace('T', ' ')}" if self.last.end else ""
            how = f"; its step then ended {self.last.state}{code}{end}"
        return (
            f"its folder was removed while mrl (pid {self.runner_pid} on {self.host}) ran it{how}; "
            f"nothing of it is left (this is kept in {GONE}/{self.name}.json): {REMAKE}"
        )


REMAKE = "`mrl makebatch --extend` makes its params again, as a new sub-experiment"


def record(sub: SubExperiment, last: Status | None) -> Path | None:
    """Keep what this run knew of `sub`, whose folder was removed as it ran it: its path,
    or None when it cannot be written (then nothing is kept, as before)."""
    from metarunlog.procs import HOST

    body: dict[str, Any] = {
        "subExpId": sub.id,
        "name": sub.name,
        "removed": jsonio.now(),
        "runnerPid": os.getpid(),
        "host": HOST,
        "last": last.to_json() if last is not None else None,
    }
    folder = sub.exp.dir / GONE
    try:
        folder.mkdir(exist_ok=True)
        path = folder / f"{sub.name}.json"
        jsonio.write_json(path, body)
    except OSError:
        return None
    return path


def entries(exp: Experiment) -> list[Gone]:
    """The sub-experiments of `exp` a run saw removed whose folder is not there now, by id."""
    from metarunlog.records import Status

    out = []
    for name, data in jsonio.json_files(exp.dir / GONE):
        sub_id, sub_name = data.get("subExpId") if isinstance(data, dict) else None, name[: -len(".json")]
        if type(sub_id) is not int or os.path.lexists(exp.dir / sub_name):
            continue
        last = data.get("last")
        pid = data.get("runnerPid")
        out.append(
            Gone(
                sub_id,
                sub_name,
                str(data.get("removed") or ""),
                pid if type(pid) is int else None,
                str(data.get("host") or ""),
                Status.from_json(last) if isinstance(last, dict) else None,
            )
        )
    return sorted(out, key=lambda g: g.id)


def forget(exp: Experiment) -> None:
    """Drop every kept entry: a new batch (-replace) or `--extend` made them all again."""
    folder = exp.dir / GONE
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
        folder.rmdir()


def lines(found: list[Gone], what: str) -> list[str]:
    """The warnings of `mrl run` / `mrl table` for gone ones: up to SHOWN named, then a
    count, each saying what to do."""
    out = [
        f"{g.name}: its folder was removed while mrl ran it: {what}; {REMAKE} (`mrl status` says more)" for g in found
    ]
    if len(out) > SHOWN:
        out = out[:SHOWN] + [f"... and {len(found) - SHOWN} more whose folders were removed while a run ran them"]
    return out
