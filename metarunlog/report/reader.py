"""Reading an experiment for the report, partly in a forked child on large ones."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from metarunlog import results
from metarunlog.experiment import Experiment
from metarunlog.results import SubResult

# Below this many sub-experiments the data is read in-process: forking gains nothing.
FORK_MIN_SUBS = 100
# The share of the sub-experiments the forked child reads; the parent reads the rest once
# it has imported bokeh (which takes about as long as reading 800 runs).
CHILD_SHARE = 0.8


def read_results(exp: Experiment, basedir: Path) -> tuple[list[SubResult], list[str]]:
    """What `results.collect` reads, with each run's metric curves extracted (`res.curves`;
    `res.lines` dropped), plus the user's `metrics()`.

    On a large experiment most files are read in a forked child while this process
    imports bokeh: both are CPU-bound and take about as long (0.3-0.4 s for 1,000 runs with
    200-line metrics.jsonl), so on two or more cores they overlap. The child sends back
    compact arrays; anything going wrong there falls back to reading in-process. The
    user's `metrics()` always runs here, in the parent.
    """
    subs = exp.sub_experiments()
    finder = results.finder_for(exp, basedir)  # the table's readers, step keys and goals
    read = None
    if len(subs) >= FORK_MIN_SUBS:
        read = _read_in_child(subs, int(len(subs) * CHILD_SHARE), finder)
    if read is None:
        read = _read_curves(subs, finder)
    results_, errors = read
    return results_, errors + results.add_all_user_metrics(results_, basedir, finder.settings)


def _read_curves(subs: list[Any], finder: Any) -> tuple[list[SubResult], list[str]]:
    from array import array

    out, errors = [], []
    steps = finder.settings.step_keys
    for sub in subs:
        res, errs = results.read_sub(sub, keep_lines=True, finder=finder)
        res.curves = {
            metric: (xkey, array("d", xs), array("d", ys))
            for metric, (xkey, xs, ys) in results.curves(res.lines or [], steps).items()
        }
        res.lines = None
        out.append(res)
        errors += errs
    return out, errors


def _read_in_child(subs: list[Any], k: int, finder: Any) -> tuple[list[SubResult], list[str]] | None:
    """Read subs[:k] in a forked child and subs[k:] here after importing bokeh."""
    import pickle
    import sys
    import threading

    if not hasattr(os, "fork") or threading.active_count() > 1 or "bokeh.plotting" in sys.modules:
        return None  # forking a threaded process is unsafe; nothing to overlap with
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: read, send, and leave without running any of the parent's cleanup
        code = 1
        try:
            os.close(rfd)
            payload = pickle.dumps(_read_curves(subs[:k], finder), protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(wfd, "wb") as f:
                f.write(payload)
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    import bokeh.plotting  # noqa: F401  (the point: imported while the child reads)

    mine, my_errors = _read_curves(subs[k:], finder)
    with os.fdopen(rfd, "rb") as f:
        payload = f.read()
    _, status = os.waitpid(pid, 0)
    try:
        theirs, their_errors = pickle.loads(payload) if status == 0 else _read_curves(subs[:k], finder)
    except Exception:
        theirs, their_errors = _read_curves(subs[:k], finder)
    return theirs + mine, their_errors + my_errors
