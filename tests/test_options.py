"""Option spellings (issue 12): every original single-dash long option also has a
double-dash form, every shown double-dash option is kebab-case, older camelCase
spellings keep working unseen, and `mrl new --cp 1 x` means what it says."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from metarunlog.main import build_parser, main
from tests.helpers.repo import commit_all, run_mrl, set_cfg

KEBAB = re.compile(r"^--[a-z0-9]+(-[a-z0-9]+)*$")
ORIGINAL = {
    "new": ["-cp", "-nc", "-gfut"],
    "ls": ["-tm", "-ghash", "-gdesc", "-desc"],
    "makebatch": ["-replace"],
    "analyze": ["-outdir"],
}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser, _ = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_shown_double_dash_option_is_kebab_case() -> None:
    bad = [
        f"mrl {name} {flag}"
        for name, sub in _subparsers().items()
        for action in sub._actions
        if action.help != argparse.SUPPRESS
        for flag in action.option_strings
        if flag.startswith("--") and not KEBAB.match(flag)
    ]
    assert bad == []


def test_every_original_single_dash_option_has_a_double_dash_form() -> None:
    subs = _subparsers()
    for name, flags in ORIGINAL.items():
        for flag in flags:
            action = next(a for a in subs[name]._actions if flag in a.option_strings)
            assert f"-{flag}" in action.option_strings, (name, flag, action.option_strings)


def record(project: Path, name: str) -> dict:
    return json.loads((project / "output" / name / ".mrl").read_text())


def test_new_cp_with_two_dashes_takes_its_value_and_not_the_description(project: Path) -> None:
    assert main(["new", "first"]) == 0
    (project / "output" / "0001" / "conf.lua").write_text("-- from 0001\n")
    assert main(["new", "--cp", "1", "x"]) == 0
    assert record(project, "0002")["description"] == "x" and record(project, "0002")["copiedFrom"] == "0001"
    assert main(["new", "--copyConfigFrom", "no", "--gitFailUntracked", "no", "old spelling"]) == 0
    assert record(project, "0003")["copiedFrom"] is None and record(project, "0003")["description"] == "old spelling"
    assert main(["new", "--copy-config-from=basedir", "--git-fail-untracked=yes", "--nc"]) == 0
    assert record(project, "0004")["copiedFrom"] == "basedir" and record(project, "0004")["gitFailUntracked"] == "yes"
    r = run_mrl("new", "--help", cwd=project)
    assert "--copyConfigFrom" not in r.stdout and "--copy-config-from" in r.stdout


def test_ls_and_makebatch_accept_the_double_dash_forms(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "asked"]) == 0
    capsys.readouterr()
    assert main(["ls", "--tm", "--ghash", "--gdesc", "--desc"]) == 0
    assert "asked" in capsys.readouterr().out
    assert main(["makebatch"]) == 0
    assert main(["makebatch", "--replace"]) == 0


def test_hook_xargs_take_one_or_two_dashes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "mrl_hooks.py").write_text("def score(mrl, args):\n    print('score', args.epoch, args.nEpochs)\n")
    set_cfg(project, hooks={"score": {"epoch": 300, "nEpochs": None}})
    commit_all(project, "hooks")
    assert main(["new"]) == 0
    for argv in (
        ["-epoch", "12", "-nEpochs", "3"],
        ["--epoch", "12", "--n-epochs", "3"],
        ["--epoch=12", "--nEpochs", "3"],
    ):
        capsys.readouterr()
        assert main(["score", *argv]) == 0, argv
        assert capsys.readouterr().out.strip() == "score 12 3"
    r = run_mrl("score", "--help", cwd=project)
    assert "--n-epochs VALUE" in r.stdout and "--nEpochs" not in r.stdout
