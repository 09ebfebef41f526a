"""metarunlog/errors.py: the user-fixable errors. Each class is what the real situation
raises (so API users and hooks can catch the specific one), and each is an MrlError the
handler prints as one line; the handler itself is tested in tests/test_error_handler.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from metarunlog import errors, hooks
from metarunlog.batch import parse_spec, split_template
from metarunlog.commands.new import new
from metarunlog.project import Project
from tests.helpers.records import make_exp
from tests.helpers.repo import run_mrl


def test_every_user_error_is_an_mrl_error() -> None:
    for name in ("ConfigError", "NotAnExperiment", "CorruptRecord", "DirtyTree", "HookError", "BatchError"):
        assert issubclass(getattr(errors, name), errors.MrlError)
    assert not issubclass(errors.MrlError, (OSError, ValueError))  # never caught as a low-level error


def test_an_unreadable_mrl_cfg_is_a_config_error_naming_the_file_and_line(project: Path) -> None:
    (project / ".mrl.cfg").write_text('{"outdir": "output",\n "run": }\n')
    with pytest.raises(errors.ConfigError, match=r"\.mrl\.cfg: line 2 column 9: .*\(it must be JSON\)"):
        Project.find(project)


def test_an_experiment_that_is_not_there_is_not_an_experiment(project: Path) -> None:
    with pytest.raises(errors.NotAnExperiment, match="no experiment yet: make one with `mrl new`"):
        Project.find(project).load_exp(None)
    make_exp(project, [{"params": {"lr": 0.1}}])
    with pytest.raises(errors.NotAnExperiment, match="see `mrl ls`"):
        Project.find(project).load_exp("99")


def test_a_corrupt_experiment_record_is_a_corrupt_record_naming_its_path(project: Path) -> None:
    exp = make_exp(project, [{"params": {"lr": 0.1}}])
    (exp.dir / ".mrl").write_text('{"expId": 1, "descr')
    with pytest.raises(errors.CorruptRecord) as e:
        Project.find(project).load_exp(str(exp.id)).record  # noqa: B018 (read on access)
    assert str(exp.dir / ".mrl") in str(e.value)


def test_new_on_a_dirty_tree_is_a_dirty_tree_error_saying_how_to_go_on(project: Path) -> None:
    (project / "train.py").write_text("print('changed')\n")
    with pytest.raises(errors.DirtyTree, match="train.py") as e:
        new(Project.find(project), description="x")
    assert "commit" in str(e.value)


def test_a_bad_mrl_line_is_a_batch_error_naming_file_and_line() -> None:
    template = split_template("conf.lua", "x = {{lr}}\n-- MRL:grid['lr'] = [0.1,\n")
    with pytest.raises(errors.BatchError, match="conf.lua"):
        parse_spec(template.mrl_lines)


def test_a_registered_function_the_file_lacks_is_a_hook_error(project: Path) -> None:
    (project / "mrl_analyze.py").write_text("def other():\n    pass\n")
    with pytest.raises(errors.HookError, match="'missing' is registered in .mrl.cfg"):
        hooks.get_function(project, hooks.ANALYZE_FILE, "missing")


def test_each_of_them_reaches_the_user_as_one_line_and_exit_1(project: Path) -> None:
    (project / ".mrl.cfg").write_text("{not json")
    proc = run_mrl("ls", cwd=project)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and proc.stderr.startswith("mrl: error: ")
    assert "Traceback" not in proc.stderr
