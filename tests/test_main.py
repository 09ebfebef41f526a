from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from metarunlog import __version__
from metarunlog.main import COMMANDS, main
from tests.helpers.repo import REPO_ROOT, commit_all, run_mrl, set_cfg

HEAVY = ("pandas", "bokeh", "git", "markdown", "nbformat", "numpy", "jinja2")


def test_help_lists_every_command(project: Path) -> None:
    r = run_mrl("--help", cwd=project)
    assert r.returncode == 0
    for name in COMMANDS:
        assert re.search(rf"^    {name}(\s|$)", r.stdout, re.M), name


@pytest.mark.parametrize("name", COMMANDS)
def test_every_commands_help_says_what_it_writes(project: Path, name: str) -> None:
    r = run_mrl(name, "--help", cwd=project)
    assert r.returncode == 0, r.stderr
    assert re.search(r"\b(writes|creates)\b", r.stdout, re.I), r.stdout


def test_no_arguments_prints_help(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    assert main([]) == 0
    assert "usage: mrl" in capsys.readouterr().out


def test_version() -> None:
    r = run_mrl("--version")
    assert r.stdout.strip() == f"metarunlog {__version__}"


def test_as_the_program_main_leaves_what_is_alive_out_of_the_last_collection(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import gc

    assert gc.get_freeze_count() == 0
    assert main(["--version"]) == 0 and gc.get_freeze_count() == 0  # called with argv: not the program
    monkeypatch.setattr(sys, "argv", ["mrl", "--version"])
    try:
        assert main() == 0 and gc.get_freeze_count() > 0  # the process ends next: nothing to walk
    finally:
        gc.unfreeze()
    assert "metarunlog" in capsys.readouterr().out


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
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "HOME": str(project)},
    )
    assert r.stdout.strip().splitlines()[-1] == "HEAVY:", (argv, r.stdout, r.stderr)


# -- docs/design.md "Where to add: a command", done once ---------------------------------------

HELLO = '''\
"""Greet an experiment: `mrl hello [EXP] [--shout]` (a command added by a test)."""

from __future__ import annotations

import argparse

from metarunlog.errors import MrlError
from metarunlog.project import Project

HELP = "greet an experiment"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("expId", nargs="?", metavar="EXP", help="experiment (default: the newest)")
    p.add_argument("--shout", action="store_true", help="in capitals")


def greeting(project: Project, exp_id: int, shout: bool) -> str:
    exp = project.load_exp(exp_id)
    if not exp.record.description:
        raise MrlError(f"experiment {exp.name} has no description to greet: give one to mrl new")
    text = f"hello {exp.name}: {exp.record.description}"
    return text.upper() if shout else text


def cli(args: argparse.Namespace, project: Project) -> int:
    print(greeting(project, args.expId, args.shout))
    return 0
'''


@pytest.fixture
def hello_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`metarunlog/commands/hello.py` and its name in `main.COMMANDS`, the two steps of
    docs/design.md, done from a test: the module lives in a temp folder added to the
    `metarunlog.commands` package's path."""
    import metarunlog.commands
    import metarunlog.main

    folder = tmp_path / "more_commands"
    folder.mkdir()
    (folder / "hello.py").write_text(HELLO)
    monkeypatch.setattr(metarunlog.commands, "__path__", [*metarunlog.commands.__path__, str(folder)])
    monkeypatch.setattr(metarunlog.main, "COMMANDS", [*metarunlog.main.COMMANDS, "hello"])
    monkeypatch.delitem(sys.modules, "metarunlog.commands.hello", raising=False)
    yield
    sys.modules.pop("metarunlog.commands.hello", None)


def test_a_command_added_as_design_md_says_is_listed_parsed_and_run(
    hello_command: None, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new", "-cp", "no", "first try"]) == 0
    assert main(["new", "-cp", "no", "second try"]) == 0
    capsys.readouterr()
    assert main(["--help"]) == 0
    assert re.search(r"^\s+hello\s+greet an experiment$", capsys.readouterr().out, re.M)
    assert main(["hello", "--help"]) == 0
    usage = capsys.readouterr().out
    assert usage.startswith("usage: mrl hello [-h] [--shout] [EXP]") and "Greet an experiment" in usage
    assert main(["hello"]) == 0
    assert capsys.readouterr().out == "hello 0002: second try\n"
    assert main(["hello", "0001", "--shout"]) == 0  # main resolved EXP to the int id
    assert capsys.readouterr().out == "HELLO 0001: FIRST TRY\n"


def test_an_added_command_gets_mrls_errors_for_free(
    hello_command: None, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new", "-cp", "no"]) == 0
    capsys.readouterr()
    assert main(["hello", "--loud"]) == 1
    assert capsys.readouterr().err.startswith("mrl: error: unrecognized arguments: --loud (see `mrl hello --help`)")
    assert main(["hello", "7"]) == 1
    assert capsys.readouterr().err.startswith("mrl: error: no experiment 7 in ")
    assert main(["hello"]) == 1  # its own MrlError: one line, exit 1
    assert capsys.readouterr().err == "mrl: error: experiment 0001 has no description to greet: give one to mrl new\n"


def test_hooks_wrap_an_added_command_like_a_built_in_one(hello_command: None, project: Path, capsys) -> None:
    (project / "mrl_hooks.py").write_text(
        "def before_hello(mrl, args):\n    print(f'before {args.expId!r}')\n"
        "def after_hello(mrl, args):\n    print('after')\n"
    )
    set_cfg(project, hooks={"before_hello": {}, "after_hello": {}})
    commit_all(project, "hooks")
    assert main(["new", "-cp", "no", "hooked"]) == 0
    capsys.readouterr()
    assert main(["hello"]) == 0
    assert capsys.readouterr().out == "before 1\nhello 0001: hooked\nafter\n"


def test_a_hook_command_and_info_default_to_the_experiment_you_are_in_as_their_help_says(project: Path) -> None:
    (project / "mrl_hooks.py").write_text("def score(self, args):\n    print('scoring', args.expId)\n")
    set_cfg(project, hooks={"score": {}})
    commit_all(project, "hooks")
    assert main(["new", "first"]) == 0
    assert main(["new", "second"]) == 0
    inside = project / "output" / "0001"
    for cmd in ("score", "info"):
        said = " ".join(run_mrl(cmd, "--help", cwd=project).stdout.split())
        assert "EXP experiment (default: the one you are in, else the newest)" in said, said
    assert run_mrl("score", cwd=inside).stdout == "scoring 1\n"
    assert run_mrl("score", cwd=project).stdout == "scoring 2\n"
    assert run_mrl("info", "--path", cwd=inside).stdout == f"{inside}\n"


def test_a_double_dash_ends_the_options_and_every_word_after_it_is_a_positional(project: Path) -> None:
    # `mrl run 1 --dry-run -- 2` was "unrecognized arguments: -- 2": any `--` skipped the
    # intermixed parse that takes words after an option as positionals (`run 3 --force 2`)
    from tests.backends.contract import make_experiment

    exp = make_experiment(project, [{"x": i} for i in (1, 2, 3)], "echo {{x}} >> ran.txt")
    dry = run_mrl("run", str(exp.id), "--dry-run", "--", "2", cwd=project)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("# 1 of 1 would run"), dry.stdout
    res = run_mrl("run", str(exp.id), "-j", "1", "--", "2", cwd=project)
    assert res.returncode == 0, res.stderr
    assert [(exp.dir / f"00{i}" / "ran.txt").exists() for i in (1, 2, 3)] == [False, True, False]
    st = run_mrl("status", str(exp.id), "--json", "--", "2", cwd=project)
    assert st.returncode == 0, st.stderr
    assert [r["id"] for r in json.loads(st.stdout)] == [2]
    diff = run_mrl("diff", f"{exp.id}/1", "--json", "--", f"{exp.id}/2", cwd=project)
    assert diff.returncode == 0, diff.stderr
    assert json.loads(diff.stdout)["b"] == f"{exp.name}/002"
    # after `--` nothing is an option, as always: not a --dry-run, a selection mrl refuses
    late = run_mrl("run", "--", str(exp.id), "--dry-run", cwd=project)
    assert late.returncode == 1 and "bad selection '--dry-run'" in late.stderr, late.stderr
    assert not (exp.dir / "001" / "ran.txt").exists()
    # `--` still ends an option's list of values, and `mrl tag` still takes `-- -NAME`
    assert run_mrl("tag", str(exp.id), "+a", "+b", cwd=project).returncode == 0
    assert run_mrl("tag", str(exp.id), "--", "-a", cwd=project).stdout == f"{exp.name}: b\n"
    # an unknown option before `--` is still one line naming it
    bad = run_mrl("run", str(exp.id), "--nope", "--", "2", cwd=project)
    assert bad.returncode == 1
    assert bad.stderr == "mrl: error: unrecognized arguments: --nope -- 2 (see `mrl run --help`)\n"


def test_a_hook_command_takes_its_experiment_after_a_double_dash(project: Path) -> None:
    (project / "mrl_hooks.py").write_text("def score(self, args):\n    print('scoring', args.expId, args.epoch)\n")
    set_cfg(project, hooks={"score": {"epoch": None}})
    commit_all(project, "hooks")
    assert main(["new", "first"]) == 0
    assert main(["new", "second"]) == 0
    for argv in (["-epoch", "5", "--", "1"], ["1", "-epoch", "5"], ["-epoch", "5", "1"]):
        res = run_mrl("score", *argv, cwd=project)
        assert (res.returncode, res.stdout) == (0, "scoring 1 5\n"), (argv, res.stderr)
    # `--` makes a word that looks like an option the experiment (none such here)
    res = run_mrl("score", "-epoch", "5", "--", "-epoch", cwd=project)
    assert res.returncode == 1 and "-epoch" in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr
