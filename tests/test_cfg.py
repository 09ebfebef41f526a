"""metarunlog/cfg.py: the loaded .mrl.cfg as module attributes, for hook files written for
the original metarunlog (`import metarunlog.cfg as cfg; cfg.confTemplFile`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metarunlog import cfg as legacy_cfg
from metarunlog.main import main
from tests.helpers.repo import commit_all, set_cfg


def test_fill_makes_each_key_a_module_attribute() -> None:
    legacy_cfg._fill({"name": "demo", "confTemplFile": "conf.lua"})
    assert legacy_cfg.name == "demo"
    assert legacy_cfg.confTemplFile == "conf.lua"
    legacy_cfg._fill({"name": "again"})
    assert legacy_cfg.name == "again" and legacy_cfg.confTemplFile == "conf.lua"


def test_a_hook_reads_the_projects_config_from_the_module(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "mrl_hooks.py").write_text(
        "import metarunlog.cfg as cfg\n"
        "def show(self, args):\n"
        "    return f'{cfg.confTemplFile} {cfg.outdir} {cfg.copyFiles}'\n"
    )
    set_cfg(project, hooks={"show": {}})
    commit_all(project, "hook")
    capsys.readouterr()
    assert main(["show"]) == 0
    assert capsys.readouterr().out == "conf.lua output ['conf.lua']\n"


def test_load_exp_in_a_hook_puts_the_experiments_own_overrides_in_the_module(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "mrl_hooks.py").write_text(
        "import metarunlog.cfg as cfg\n"
        "def show(self, args):\n"
        "    before = cfg.note_fn\n"
        "    self._loadExp(args.expId)\n"
        "    return f'{before} -> {cfg.note_fn}'\n"
    )
    set_cfg(project, hooks={"show": {}})
    commit_all(project, "hook")
    assert main(["new"]) == 0
    exp = project / "output" / "0001"
    (exp / ".mrl.cfg").write_text(json.dumps({"note_fn": "NOTES.md"}))
    capsys.readouterr()
    assert main(["show", "1"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.endswith("-> NOTES.md") and not out.startswith("NOTES.md")
