from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from metarunlog import __version__
from metarunlog.main import COMMANDS
from tests.conftest import REPO_ROOT, main, run_mrl

HEAVY = ("pandas", "bokeh", "git", "markdown", "nbformat", "numpy", "jinja2")


def test_help_lists_every_command(project: Path) -> None:
    r = run_mrl("--help", cwd=project)
    assert r.returncode == 0
    for name in COMMANDS:
        assert re.search(rf"^    {name}(\s|$)", r.stdout, re.M), name


def test_no_arguments_prints_help(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    assert main([]) == 0
    assert "usage: mrl" in capsys.readouterr().out


def test_version() -> None:
    r = run_mrl("--version")
    assert r.stdout.strip() == f"metarunlog {__version__}"


def test_an_unknown_command_is_one_line_and_exit_1(project: Path) -> None:
    r = run_mrl("frobnicate", cwd=project)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("mrl: error: argument COMMAND")


def test_a_bad_option_is_one_line_and_exit_1(project: Path) -> None:
    r = run_mrl("ls", "--nope", cwd=project)
    assert r.returncode == 1
    assert r.stderr.startswith("mrl: error: unrecognized arguments: --nope")
    assert "see `mrl ls --help`" in r.stderr


def test_every_command_is_in_the_readme_table() -> None:
    rows = [line for line in (REPO_ROOT / "README.md").read_text().splitlines() if line.startswith("| `mrl")]
    for name in COMMANDS:
        assert any(f"`mrl {name}" in row for row in rows), name


@pytest.mark.parametrize("argv", [["--help"], ["ls"], ["status"], ["info"]])
def test_fast_commands_do_not_import_heavy_libraries(project: Path, argv: list[str]) -> None:
    assert main(["new"]) == 0
    code = (
        "import sys\n"
        "from metarunlog.main import main\n"
        f"code = main({argv!r})\n"
        f"print('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True,
                       env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "HOME": str(project)})
    assert r.stdout.strip().splitlines()[-1] == "HEAVY:", (argv, r.stdout, r.stderr)
