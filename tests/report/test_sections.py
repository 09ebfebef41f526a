"""report/sections.py: the notes as HTML (a bare `mrl new` heading without markdown)."""

from __future__ import annotations

from pathlib import Path

import pytest

from metarunlog.report import markdown_html
from metarunlog.report.sections import notes_html
from tests.helpers.records import make_exp

HEADINGS = [
    "# 0001: bench 1000x200\n",
    "# 0002: lr sweep (warmup=5), wd/2 + 3 - 1.5\n\n",
    "#  0003:  two  spaces  \n",
    "# 0004: *bold* and `code`\n",  # markdown's: not a plain heading
    "# 0005: a & b <i>\n",
    "# 0006: notes\n\nA paragraph.\n",
]


@pytest.mark.parametrize("text", HEADINGS)
def test_the_notes_are_the_same_html_as_markdown_makes_of_them(project: Path, text: str) -> None:
    exp = make_exp(project, [])
    exp.note_path.write_text(text)
    assert notes_html(exp) == markdown_html(text)
