"""metarunlog/exceptions.py: the original metarunlog's exception names, for hook files written
for it. Each catches what mrl raises for the same problem, and a hook raising one gets the
usual one-line `mrl: error:`. Importing them from an original hook file is in
tests/test_original_compat.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from metarunlog import errors, exceptions
from metarunlog.commands.new import new
from metarunlog.main import main
from metarunlog.project import Project
from tests.helpers.repo import commit_all, run_mrl, set_cfg

# the names the original's last metarunlog/exceptions.py defined
ORIGINAL_NAMES = {
    "InvalidOutDirException",
    "NoBasedirConfig",
    "NoCleanStateException",
    "InvalidExpIdException",
    "BatchException",
    "ConfParserException",
}


def test_a_star_import_gives_every_name_the_original_defined() -> None:
    namespace: dict[str, Any] = {}
    exec("from metarunlog.exceptions import *", namespace)  # what original hook files do
    assert set(namespace) >= ORIGINAL_NAMES
    assert all(issubclass(namespace[n], errors.MrlError) for n in ORIGINAL_NAMES)


@pytest.mark.parametrize("method", ["_resolveExpId", "_getExpDir", "_loadExp", "_getExpConf", "_getSubExperiments"])
def test_invalid_exp_id_exception_catches_a_missing_experiment_from_the_original_api(
    project: Path, method: str
) -> None:
    assert main(["new", "-cp", "no"]) == 0
    mrl = Project.find(project)
    with pytest.raises(exceptions.InvalidExpIdException):
        getattr(mrl, method)("99")
    with pytest.raises(exceptions.InvalidExpIdException):
        getattr(mrl, method)("not-an-experiment")


def test_no_clean_state_exception_catches_new_on_a_dirty_tree(project: Path) -> None:
    (project / "train.py").write_text("print('uncommitted')\n")
    with pytest.raises(exceptions.NoCleanStateException):
        new(Project.find(project), description="dirty")


def test_batch_exception_catches_a_bad_mrl_line(project: Path) -> None:
    from metarunlog.batch import parse_spec, split_template

    with pytest.raises(exceptions.BatchException):
        parse_spec(split_template("conf.lua", "-- MRL:grid['lr'] = [0.1,\n").mrl_lines)
    assert issubclass(exceptions.ConfParserException, exceptions.BatchException)


def test_no_basedir_config_keeps_the_original_s_arguments_and_message() -> None:
    cause = ValueError("No JSON object could be decoded")
    e = exceptions.NoBasedirConfig("/home/me/proj", cause)
    assert str(e) == "NoBasedirConfig in /home/me/proj : No JSON object could be decoded"
    assert e.basedir == "/home/me/proj" and e.orig_e is cause
    assert isinstance(e, errors.ConfigError)
    assert isinstance(exceptions.InvalidOutDirException("x"), errors.ConfigError)


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        ("InvalidOutDirException('Need output directory /x  Fix your .mrl.cfg file')", "Need output directory /x"),
        ("NoBasedirConfig('/p', 'bad cfg')", "NoBasedirConfig in /p : bad cfg"),
        ("NoCleanStateException('new: uncommited files -- please commit changes first')", "please commit changes"),
        ("ConfParserException('cannot parse conf.lua')", "cannot parse conf.lua"),
    ],
)
def test_a_hook_raising_one_is_one_error_line_and_exit_1(project: Path, raised: str, message: str) -> None:
    (project / "mrl_hooks.py").write_text(
        f"from metarunlog.exceptions import *\n\ndef check(self, args):\n    raise {raised}\n"
    )
    set_cfg(project, hooks={"check": {}})
    commit_all(project, "hooks")
    proc = run_mrl("check", cwd=project)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.splitlines()[-1]
    assert last.startswith("mrl: error: hook check raised ") and message in last
    assert "Traceback" not in proc.stderr
