"""Acceptance checks of issues 9-11 as a user meets them (accept-b1): the CLI in a real
subprocess, in a real git repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.repo import run_mrl


@pytest.mark.parametrize(
    ("args", "bad"),
    [
        (("status", "1/1,x"), "'1,x'"),
        (("table", "1/abc"), "'abc'"),
        (("info", "1/1-"), "'1-'"),
        (("status", "last/2,"), None),
    ],
)
def test_exp_slash_a_bad_selection_says_the_selection_is_bad_not_that_there_is_no_experiment(
    project: Path, args: tuple[str, ...], bad: str | None
) -> None:
    for step in (("new", "q"), ("makebatch",)):
        run_mrl(*step, cwd=project, check=True)
    res = run_mrl(*args, cwd=project)
    if bad is None:  # a trailing comma is a selection (`2,`), as in `mrl status 1 2,`
        assert res.returncode == 0, res.stderr
        return
    assert res.returncode == 1 and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mrl: error: "), res.stderr
    assert f"bad selection {bad}" in lines[0] and "is not an experiment" not in lines[0], lines[0]
