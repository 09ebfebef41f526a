"""Where metrics come from: readers behind one interface, and a registry of them.

    from metarunlog import metrics
    finder = metrics.Finder(metrics.settings(cfg))  # the readers `.mrl.cfg` leaves on
    found = finder.read(sub_dir)                    # .summary (dict|None), .rows (iterator)

Add a reader: a module with a `metrics.Reader` subclass decorated with `metrics.register`
(see `metarunlog/metrics/base.py` for the interface, `jsonfiles.py` for an example), and its
import below. `mrl table`, `mrl analyze`, the Python API and `makebatch -replace` (which
trashes the files readers own) then all use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metarunlog.metrics import jsonfiles  # noqa: F401  (built-in readers register on import)
from metarunlog.metrics.base import DEFAULT_STEP_KEYS, Reader, Settings, Source
from metarunlog.metrics.registry import names, readers, register, unregister
from metarunlog.metrics.sources import Finder, Found

__all__ = [
    "DEFAULT_STEP_KEYS",
    "Finder",
    "Found",
    "Reader",
    "Settings",
    "Source",
    "names",
    "readers",
    "register",
    "settings",
    "unregister",
]


def settings(cfg: Mapping[str, Any] | None) -> Settings:
    """The `metrics` block of a (validated) config as Settings; defaults for what is unset."""
    block = dict((cfg or {}).get("metrics") or {})
    sources, off = [], set()
    for s in block.get("sources", []):
        if isinstance(s, str):
            sources.append(Source(s))
        elif s.get("enabled", True) is False:
            off.add(s["reader"])
        else:
            sources.append(Source(s["glob"], s.get("reader")))
    goals = {**dict((cfg or {}).get("metric_goals") or {}), **dict(block.get("metric_goals") or {})}
    return Settings(
        step_keys=tuple(block.get("step_keys", DEFAULT_STEP_KEYS)),
        sources=tuple(sources),
        off=frozenset(off),
        patterns=tuple(block.get("patterns", ())),
        log_files=tuple(block.get("log_files", ("run.log",))),
        goals=goals,
    )
