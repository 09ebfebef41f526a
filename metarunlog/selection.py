"""Which sub-experiments a command acts on: `all`, `3`, `1,4-6`, narrowed by state.

`mrl run [EXP] [SELECTION]` takes up to two positionals. With one, it is the SELECTION
when it can only be one (`all`, or ids with `,` or `-`), otherwise the EXP: `mrl run 3`
runs experiment 3, `mrl run last 3` runs sub-experiment 3 of the newest experiment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from metarunlog.errors import MrlError
from metarunlog.experiment import SubExperiment
from metarunlog.states import FAILED_LIKE, JobState

ALL = "all"
_IDS = re.compile(r"^\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*,?\s*$")


def looks_like_selection(text: str) -> bool:
    """True for what cannot be an experiment reference: `all`, `1,3`, `4-6`."""
    return text == ALL or (bool(_IDS.match(text)) and ("," in text or "-" in text))


def parse(spec: str) -> set[int] | None:
    """`all` -> None (everything); `1,4-6` -> {1, 4, 5, 6}."""
    spec = spec.strip()
    if spec in ("", ALL):
        return None
    if not _IDS.match(spec):
        raise MrlError(f"bad selection {spec!r}: use 'all', an id like 3, or a list like 1,4-6")
    ids: set[int] = set()
    for part in filter(None, (p.strip() for p in spec.split(","))):
        a, _, b = part.partition("-")
        lo, hi = int(a), int(b or a)
        if hi < lo:
            raise MrlError(f"bad range {part!r} in selection {spec!r}: write it low-high, like {hi}-{lo}")
        ids.update(range(lo, hi + 1))
    return ids


def pick(subs: Sequence[SubExperiment], spec: str) -> list[SubExperiment]:
    """The sub-experiments named by `spec`, in id order; an unknown id is an MrlError."""
    ids = parse(spec)
    if ids is None:
        return list(subs)
    known = {s.id for s in subs}
    missing = sorted(ids - known)
    if missing:
        have = f"{min(known)}-{max(known)}" if known else "none"
        raise MrlError(f"no sub-experiment {_fmt(missing)} in this experiment (it has {have}): see `mrl status`")
    return [s for s in subs if s.id in ids]


def narrow(states: Iterable[JobState], *, failed: bool = False, pending: bool = False) -> list[bool]:
    """Which of these states `--failed` / `--pending` keep (both: either)."""
    if not (failed or pending):
        return [True for _ in states]
    return [(failed and s in FAILED_LIKE) or (pending and s is JobState.PENDING) for s in states]


def _fmt(ids: list[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:10])
    return shown + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
