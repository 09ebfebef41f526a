"""Reading an experiment for the report, partly in a forked child on large ones."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from metarunlog import results
from metarunlog.experiment import Experiment
from metarunlog.report.functions import collector_on
from metarunlog.results import SubResult

# Below this many sub-experiments the data is read in-process: forking gains nothing.
FORK_MIN_SUBS = 100

# one sub-experiment's results, what went wrong reading it, and its readers' warnings
Read = tuple[SubResult, list[str], list[str]]


def read_results(
    exp: Experiment, basedir: Path, log_lines: int | None = 20, warnings: list[str] | None = None
) -> tuple[list[SubResult], list[str]]:
    """What `results.collect` reads, with each run's metric curves extracted (`res.curves`;
    `res.lines` dropped) and the last `log_lines` lines of its run.log (`res.log_tail`;
    None: not read), plus the user's `metrics()`. The readers' warnings (lines of a
    metrics.jsonl that are not JSON objects, a missing optional extra), each once, are added
    to `warnings`, from the forked child's reads too (the report shows them).

    On a large experiment a forked child reads the files from the first on while this
    process imports bokeh (about as long as reading 1,000 runs with 200-line
    metrics.jsonl: 0.4-0.5 s); then this process reads from the last one down until the
    two meet. Whichever of the two the machine lets run faster does more, so on two or
    more cores the import costs next to nothing. The child sends compact arrays back;
    anything going wrong there falls back to reading in-process. The user's `metrics()`
    always runs here, in the parent.
    """
    subs = exp.sub_experiments()
    finder = results.finder_for(exp, basedir)  # the table's readers, step keys and goals
    read = _read_in_child(subs, finder, log_lines) if len(subs) >= FORK_MIN_SUBS else None
    if read is None:
        read = [_read_one(sub, finder, log_lines) for sub in subs]
    results_ = [res for res, _, _ in read]
    results.scheduled_states(exp, subs, results_, warnings)  # as `mrl status` shows them (Slurm's word)
    errors = [e for _, errs, _ in read for e in errs]
    if warnings is not None:
        warnings.extend(dict.fromkeys(w for _, _, warns in read for w in warns if w not in warnings))
    with collector_on():  # the user's metrics()
        user_errors = results.add_all_user_metrics(results_, basedir, finder.settings)
    return results_, errors + user_errors


def _read_one(sub: Any, finder: Any, log_lines: int | None) -> Read:
    from metarunlog.execute import log_tail

    curves = results.CurveBuilder(finder.settings.step_keys)  # rows become arrays as they are read
    warnings: list[str] = []
    res, errs = results.read_sub(sub, finder=finder, on_rows=curves.add, warnings=warnings)
    res.curves = curves.result()
    res.log_tail = None if log_lines is None else log_tail(sub, log_lines)
    return res, errs, warnings


class _Meeting:
    """Where the child (reading up from the first) and the parent (reading down from the
    last) are, in memory both see: the child's next index and the lowest the parent took.
    Each checks the other's before taking one, so at most the one where they meet is read
    twice (and then the child's copy is kept)."""

    def __init__(self, n: int) -> None:
        import mmap

        self.mem = mmap.mmap(-1, 16)  # anonymous and shared: the forked child writes the same pages
        self.set(0, 0)
        self.set(1, n)

    def get(self, slot: int) -> int:
        import struct

        return int(struct.unpack_from("q", self.mem, 8 * slot)[0])

    def set(self, slot: int, value: int) -> None:
        import struct

        struct.pack_into("q", self.mem, 8 * slot, value)


def _read_in_child(subs: list[Any], finder: Any, log_lines: int | None) -> list[Read] | None:
    """Read subs from both ends at once: a forked child from the first, this process from
    the last once it has imported bokeh."""
    import pickle
    import sys
    import threading

    if not hasattr(os, "fork") or threading.active_count() > 1 or "bokeh.plotting" in sys.modules:
        return None  # forking a threaded process is unsafe; nothing to overlap with
    n = len(subs)
    meet = _Meeting(n)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: read, send, and leave without running any of the parent's cleanup
        code = 1
        try:
            os.close(rfd)
            theirs = []
            for i in range(n):
                if i >= meet.get(1):
                    break
                theirs.append(_read_one(subs[i], finder, log_lines))
                meet.set(0, i + 1)
            payload = pickle.dumps(theirs, protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(wfd, "wb") as f:
                f.write(payload)
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    import bokeh.plotting  # noqa: F401  (the point: imported while the child reads)

    mine: list[Read] = []
    low = n
    while low - 1 >= meet.get(0):  # the child has not got there yet
        low -= 1
        meet.set(1, low)
        mine.append(_read_one(subs[low], finder, log_lines))
    mine.reverse()  # subs[low:]
    with os.fdopen(rfd, "rb") as f:
        payload = f.read()
    _, status = os.waitpid(pid, 0)
    try:
        theirs = pickle.loads(payload) if status == 0 else None  # type: ignore[assignment]
    except Exception:
        theirs = None  # type: ignore[assignment]
    if theirs is None or len(theirs) < low:  # the child failed: read its part here
        theirs = [_read_one(sub, finder, log_lines) for sub in subs[:low]]
    return theirs + mine[len(theirs) - low :]
