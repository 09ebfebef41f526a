"""The original metarunlog's helper functions, for hook and analysis files written for it
(`from metarunlog.util import nowstring`). New code has better homes for each."""

from __future__ import annotations

import datetime
import subprocess
from typing import Any, TextIO


def nowstring(sec: bool = True, ms: bool = False) -> str:
    """The local time as `2016-10-07T12:00:00` (without seconds with sec=False, with
    microseconds with ms=True), as the original's records wrote it."""
    text = datetime.datetime.now().isoformat()
    if not ms:
        text = text.split(".")[0]
    if not sec:
        text = text.rsplit(":", 1)[0]
    return text


def sshify(cmd: str, sshHost: str | None, sshPass: str | None, vfh: TextIO | None = None) -> str:  # noqa: N803
    """`cmd` run through `ssh HOST cmd` (and sshpass), as the original built it, but with
    every piece shell-quoted (the original pasted them in double quotes); `vfh` gets the
    command with the password masked."""
    import shlex

    shown = ""
    if sshHost:
        cmd = f"ssh {shlex.quote(sshHost)} {shlex.quote(cmd)}"
    if sshPass:
        shown = f"sshpass -p '***' {cmd}"
        cmd = f"sshpass -p {shlex.quote(sshPass)} {cmd}"
    if vfh is not None:
        vfh.write((shown or cmd) + "\n")
    return cmd


def _decode_dict(data: dict[Any, Any]) -> dict[Any, Any]:
    """Python 2's unicode -> str for json.load(object_hook=...): nothing to do on Python 3."""
    return dict(data)


def _decode_list(data: list[Any]) -> list[Any]:
    return list(data)


def get_commit() -> tuple[str, str]:
    """(abbreviated hash, subject) of HEAD in the current directory (`git log -n1 --oneline`)."""
    line = subprocess.check_output(["git", "log", "-n1", "--oneline"], text=True).split()
    return line[0], " ".join(line[1:])
