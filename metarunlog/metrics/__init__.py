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

# The built-in readers register themselves on import.
from metarunlog.metrics import csvfiles, jsonfiles, logpatterns, tensorboard  # noqa: F401
from metarunlog.metrics.base import DEFAULT_STEP_KEYS, MissingExtra, Reader, Settings, Source
from metarunlog.metrics.registry import names, readers, register, unregister
from metarunlog.metrics.settings import settings, validate
from metarunlog.metrics.sources import Finder, Found, missing_extra
from metarunlog.metrics.summary import Accumulator, Best, Summary, goal_of

__all__ = [
    "DEFAULT_STEP_KEYS",
    "Accumulator",
    "Best",
    "Finder",
    "Found",
    "MissingExtra",
    "Reader",
    "Settings",
    "Source",
    "Summary",
    "goal_of",
    "missing_extra",
    "names",
    "readers",
    "register",
    "settings",
    "unregister",
    "validate",
]
