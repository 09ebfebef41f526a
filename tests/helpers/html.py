"""Reading a written report: its HTML, and the text a reader sees (without inlined JS/CSS)."""

from __future__ import annotations

import re
from pathlib import Path


def html_of(exp_dir: Path) -> str:
    return (exp_dir / "analysis" / "index.html").read_text()


def visible_text(html: str) -> str:
    """The page without its <script> and <style> elements (bokeh's inlined JS is huge)."""
    return re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S)
