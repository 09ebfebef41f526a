"""Errors a user can fix. Each carries the fix in its message; the handler prints it once."""

from __future__ import annotations


class MrlError(Exception):
    """A problem the user can fix: printed as one `mrl: error: ...` line, exit code 1."""


class ConfigError(MrlError):
    """A missing, unreadable or invalid .mrl.cfg."""


class NotAnExperiment(MrlError):
    """EXP names no experiment."""


class CorruptRecord(MrlError):
    """A JSON record that cannot be read; the message names its path."""


class DirtyTree(MrlError):
    """The working tree has uncommitted changes."""


class HookError(MrlError):
    """mrl_hooks.py / mrl_analyze.py is missing a function, fails to import, or a hook raised."""


class BatchError(MrlError):
    """A template or MRL line that cannot be expanded."""
