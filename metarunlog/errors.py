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


class RecordTooLarge(CorruptRecord):
    """A file over the size mrl reads of a record (`jsonio.RECORD_MAX`), left unread."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


class DirtyTree(MrlError):
    """The working tree has uncommitted changes."""


class HookError(MrlError):
    """mrl_hooks.py / mrl_analyze.py is missing a function, fails to import, or a hook raised."""


class BatchError(MrlError):
    """A template or MRL line that cannot be expanded."""


def text_problem(text: str, *, path_bytes: bool = False) -> str | None:
    """Why `text` (a description, a param value) cannot be written to a UTF-8 file or passed
    as a command argument, or None when it can. Python keeps an argument's bytes that are not
    UTF-8 as lone surrogates U+DC80..U+DCFF; no encoder writes those, nor NUL to argv."""
    if "\x00" in text:
        return "holds a NUL character (\\x00), which no command argument, environment variable or file name can carry"
    for ch in text:
        if "\ud800" <= ch <= "\udfff":
            if "\udc80" <= ch <= "\udcff":
                if path_bytes:  # a file name's bytes (mrl init wrote the folder's name): written back as they are
                    continue
                return f"is not UTF-8 text (it holds the byte 0x{ord(ch) - 0xDC00:02x}; check your terminal's encoding)"
            return f"holds a lone surrogate ({ch!r}), which no UTF-8 file can hold"
    return None


class MrlWarning(UserWarning):
    """What `mrl` prints as `mrl: warning: ...` (a sub-experiment folder without `.mrl`, a
    `.mrl.cfg` key it does not know), raised by `metarunlog.api` with `warnings.warn`: a
    notebook or script sees it without configuring logging, and can filter it by class."""
