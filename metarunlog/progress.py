"""What `mrl run` shows while jobs run.

On a terminal: a live block (counts, elapsed, ETA, what each slot runs) redrawn in place.
Elsewhere (a pipe, CI): one plain line per finished sub-experiment. Either way each
failure is printed when it happens, with the last lines of its `run.log`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TextIO

from metarunlog.backends.base import Job
from metarunlog.error_handler import Guarded
from metarunlog.execute import log_tail
from metarunlog.fmt import fmt_duration
from metarunlog.states import JobState

_ORDER = ["done", "failed", "running", "queued", "pending", "cancelled", "timeout", "oom", "node_fail", "stale", "gone"]
REDRAW_S = 0.1


@contextlib.contextmanager
def guarded_output(goes_on: str = "the run goes on") -> Iterator[tuple[Guarded, Guarded]]:
    """sys.stdout and sys.stderr as `Guarded` streams for the duration."""
    saved = sys.stdout, sys.stderr
    out, err = Guarded(sys.stdout, "stdout", goes_on), Guarded(sys.stderr, "stderr")
    sys.stdout, sys.stderr = out, err  # type: ignore[assignment]
    try:
        yield out, err
    finally:
        for g in (out, err):
            g.flush()
        sys.stdout, sys.stderr = saved


def is_live(stream: TextIO) -> bool:
    return stream.isatty() and os.environ.get("TERM", "") not in ("", "dumb")


def counts_line(states: Sequence[JobState]) -> str:
    c = Counter(str(s) for s in states)
    keys = [k for k in _ORDER if c[k]] + sorted(k for k in c if k not in _ORDER)
    return ", ".join(f"{c[k]} {k}" for k in keys)


class Progress:
    """Call `update(jobs)` after every poll, `close()` at the end."""

    def __init__(
        self,
        jobs: Sequence[Job],
        slots: Sequence[str | None] = (),
        *,
        stream: TextIO | None = None,
        live: bool | None = None,
        tail: int = 20,
    ) -> None:
        self.stream = stream or sys.stdout
        self.live = is_live(self.stream) if live is None else live
        self.slots = list(slots)
        self.tail = tail
        self.total = len(jobs)
        self.t0 = time.monotonic()
        # Nothing seen yet: a job that ended before the first update still gets its line.
        self._seen: dict[int, JobState | None] = {id(j): None for j in jobs}
        self._finished = 0
        self._number: dict[int, int] = {}  # a finished job's [n/N], kept if its end is corrected
        self._drawn = 0
        self._last_draw = 0.0

    def update(self, jobs: Sequence[Job], force: bool = False) -> None:
        lines = []
        for job in jobs:
            old, new = self._seen.get(id(job)), job.state
            if new is old:
                continue
            self._seen[id(job)] = new
            if new.finished and not job.skipped:
                if id(job) in self._number:  # its end corrected (a Slurm verdict): counted once
                    lines += self._finish_lines(job, self._number[id(job)])
                    if old is not None and old.finished:
                        lines.append(f"    its record now says {new}, not {old}")
                    continue
                self._finished += 1
                self._number[id(job)] = self._finished
                lines += self._finish_lines(job, self._finished)
        if lines:
            self._clear()
            self.stream.write("\n".join(lines) + "\n")
        if self.live and (force or lines or time.monotonic() - self._last_draw >= REDRAW_S):
            self._clear()
            self._draw(jobs)
        self.stream.flush()

    def close(self, jobs: Sequence[Job]) -> None:
        self.update(jobs, force=True)
        self._clear()
        self.stream.flush()

    # -- lines -----------------------------------------------------------------------------
    def _finish_lines(self, job: Job, n: int) -> list[str]:
        status = job.status
        where = f" [{job.resource}]" if job.resource is not None and self.slots else ""
        took = fmt_duration(status.duration if status else None)
        # its record is an earlier run's (not started, or cancelled in the queue while done):
        # never shown as this run's outcome
        if job.not_run or (job.unstarted and job.state is JobState.DONE):
            return [f"[{n}/{self.total}] {job.name} not run: {job.message} (its record says {job.state})"]
        head = f"[{n}/{self.total}] {job.name} {job.state}{where}" + (f" in {took}" if took else "")
        if status is not None and status.requeues:  # `took` is its last attempt's: say there were more
            head += f" (attempt {status.attempts}, after {status.requeues} requeue{'s' if status.requeues > 1 else ''})"
        if job.state is JobState.DONE:
            return [] if self.live else [head]
        code = status.exit_code if status else None
        lines = [head + (f" (exit code {code})" if code not in (None, 0) else "")]
        if job.message:
            lines.append(f"    {job.message}")
        if job.state is JobState.FAILED:
            tail = log_tail(job.sub, self.tail)
            if tail:
                lines.append(f"    last {len(tail)} lines of {job.sub.log_path}:")
                lines += [f"    | {t}" for t in tail]
        return lines

    def _draw(self, jobs: Sequence[Job]) -> None:
        elapsed = time.monotonic() - self.t0
        active = [j for j in jobs if not j.skipped]
        left = sum(1 for j in active if not j.state.finished)
        eta = ""
        if self._finished and left:
            eta = f", ETA {fmt_duration(elapsed / self._finished * left)}"
        block = [f"{counts_line([j.state for j in active])} | elapsed {fmt_duration(elapsed)}{eta}"]
        running = {j.slot: j for j in active if j.state is JobState.RUNNING and j.slot is not None}
        for i, res in enumerate(self.slots):
            job = running.get(i)
            label = f"slot {i}" + (f" (resource {res})" if res is not None else "")
            block.append(f"  {label}: {job.name if job else 'idle'}")
        width = _width()
        self.stream.write("".join(line[:width] + "\n" for line in block))
        self._drawn = len(block)
        self._last_draw = time.monotonic()

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0


def _width() -> int:
    try:
        return max(20, os.get_terminal_size().columns - 1)
    except OSError:
        return 119
