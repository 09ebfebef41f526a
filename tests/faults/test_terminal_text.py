"""Text a user (or a template) put in a param value or a description reaches the terminal
as one line of text: a newline never prints a line that reads as another row, with another
row's result; an ESC never drives the terminal (issue 10: nothing lies, hostile input)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers.repo import commit_all, run_mrl, set_cfg

FAKE_ROW = "b\n001  a     done       0.0s    99"


def test_a_newline_in_a_param_value_never_prints_a_fake_table_row(project: Path) -> None:
    set_cfg(project, confTemplFile=None, copyFiles=[], run={"command": "echo '{\"acc\": 5}' > metrics.json"})
    commit_all(project, "flags")
    assert run_mrl("new", "x", cwd=project).returncode == 0
    made = run_mrl("makebatch", "--grid", "name=a,b", "--set", f"note={FAKE_ROW}", cwd=project)
    assert made.returncode == 0, made.stderr
    assert run_mrl("run", cwd=project).returncode == 0
    for args in (["table"], ["table", "--all-params"], ["status"]):
        out = run_mrl(*args, cwd=project).stdout
        rows = [line for line in out.splitlines() if re.match(r"00[12]\s", line)]
        assert len(rows) == 2, f"mrl {' '.join(args)}:\n{out}"
    table = run_mrl("table", "--all-params", cwd=project).stdout
    assert "b\\n001  a" in table  # the value itself, escaped, still there


def test_an_escape_sequence_in_a_description_never_reaches_the_terminal(project: Path) -> None:
    assert run_mrl("new", "\x1b]0;owned\x07\x1b[31mred\x1b[0m", cwd=project).returncode == 0
    for args in (["ls", "-desc"], ["info", "last"], ["last"]):
        out = run_mrl(*args, cwd=project).stdout
        assert "\x1b" not in out and "\x07" not in out, (args, out)
        assert "\\x1b[31mred" in out, (args, out)
