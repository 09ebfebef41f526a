"""The original metarunlog's exception names, for hook files written for it
(`from metarunlog.exceptions import InvalidExpIdException`).

Each is mrl's own error class for the same problem, so `except InvalidExpIdException:`
around `self._resolveExpId(...)` catches what mrl raises, and a hook that raises one gets
the usual one-line `mrl: error:`. New code should use `metarunlog.errors`.
"""

from __future__ import annotations

from metarunlog.errors import BatchError, ConfigError, DirtyTree, MrlError, NotAnExperiment

InvalidExpIdException = NotAnExperiment
NoCleanStateException = DirtyTree
BatchException = BatchError


class InvalidOutDirException(ConfigError):
    """The configured outdir is not a folder."""


class ConfParserException(BatchError):
    """A template that cannot be expanded."""


class NoBasedirConfig(ConfigError):
    """No usable .mrl.cfg in `basedir` (the original's constructor: basedir, reason)."""

    def __init__(self, basedir: object, e: object) -> None:
        super().__init__(f"NoBasedirConfig in {basedir} : {e}")
        self.basedir = basedir
        self.orig_e = e


__all__ = [
    "BatchException",
    "ConfParserException",
    "InvalidExpIdException",
    "InvalidOutDirException",
    "MrlError",
    "NoBasedirConfig",
    "NoCleanStateException",
]
