from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from metarunlog.main import main
from metarunlog.records import SubRecord
from tests.helpers.repo import REPO_ROOT, commit_all, run_mrl, set_cfg


def hooks(project: Path, source: str, registered: dict) -> None:
    (project / "mrl_hooks.py").write_text(source)
    set_cfg(project, hooks=registered)
    commit_all(project, "hooks")


def test_before_and_after_hooks_wrap_a_builtin_command(project: Path) -> None:
    hooks(
        project,
        """
import json
def before_new(mrl, args):
    open("calls.txt", "a").write(f"before {args.expId}\\n")
def after_new(mrl, args):
    expId, expDir, expConfig = mrl._loadExp(args.expId)
    open("calls.txt", "a").write(f"after {args.expId} {expConfig['description']} {expDir}\\n")
""",
        {"before_new": {}, "after_new": {}},
    )
    assert main(["new", "hooked"]) == 0
    lines = (project / "calls.txt").read_text().splitlines()
    assert lines == ["before None", f"after 1 hooked {project / 'output' / '0001'}"]


def test_hooks_see_the_resolved_experiment_id(project: Path) -> None:
    hooks(
        project,
        """
def before_info(mrl, args):
    open("seen.txt", "w").write(repr(args.expId))
""",
        {"before_info": {}},
    )
    assert main(["new"]) == 0
    assert main(["new"]) == 0
    assert main(["info", "last"]) == 0
    assert (project / "seen.txt").read_text() == "2"


def test_a_hook_file_written_for_the_original_metarunlog_runs_unchanged(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hooks(
        project,
        """
import metarunlog.cfg as cfg
import os
from os.path import join

def after_new(self, args):
    expId, expDir, expConfig = self._loadExp('last')
    line = 'echo %s %s %s' % (cfg.name, expConfig['gitHash'][:7], cfg.confTemplFile)
    open(join(expDir, 'launch.sh'), 'w').write(line)

def score(self, args):
    expId, expDir, expConfig = self._loadExp(args.expId)
    subExpList = self._getSubExperiments(expDir)
    args = vars(args)
    epoch = args.get('epoch', 300)
    print('score', expId, int(epoch), subExpList, args.get('testset'))
""",
        {"after_new": {}, "score": {"epoch": 300, "testset": None}},
    )
    assert main(["new"]) == 0
    launch = (project / "output" / "0001" / "launch.sh").read_text()
    assert launch.startswith("echo proj ") and launch.endswith(" conf.lua")
    (project / "output" / "0001" / "001").mkdir()
    (project / "output" / "0001" / "001" / ".mrl").write_text(json.dumps(SubRecord(1, {}).to_json()))
    capsys.readouterr()
    assert main(["score", "-epoch", "12", "-testset", "hub5"]) == 0
    assert capsys.readouterr().out.strip() == "score 1 12 ['001'] hub5"


def test_a_custom_command_with_a_null_default_requires_the_option(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hooks(project, "def score(mrl, args):\n    return 0\n", {"score": {"testset": None}})
    assert main(["new"]) == 0
    capsys.readouterr()
    assert main(["score"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrl: error:") and "-testset" in err


@pytest.mark.parametrize(
    ("returned", "printed", "code"),
    [("'done'", "done\n", 0), ("{'best': 0.9}", "{'best': 0.9}\n", 0), ("[1, 2]", "[1, 2]\n", 0), ("3", "", 3)],
    ids=["str", "dict", "list", "int"],
)
def test_a_custom_command_prints_what_it_returns_as_the_original_did_an_int_being_its_exit_code(
    project: Path, returned: str, printed: str, code: int
) -> None:
    # the original printed any value a command returned (`if ret: print(ret)`); a dict or a
    # list was dropped without a word before
    hooks(project, f"def score(mrl, args):\n    return {returned}\n", {"score": {}})
    run_mrl("new", cwd=project, check=True)
    res = run_mrl("score", cwd=project)
    assert (res.returncode, res.stdout) == (code, printed), res.stderr


def test_custom_commands_are_listed_in_help(project: Path) -> None:
    hooks(project, "def score(mrl, args):\n    pass\n", {"score": {"epoch": 3}})
    r = run_mrl("--help", cwd=project)
    assert r.returncode == 0
    assert "score" in r.stdout and "custom command: the hook" in r.stdout
    r = run_mrl("score", "--help", cwd=project)
    assert "-epoch VALUE" in r.stdout
    said = " ".join(r.stdout.split())  # what the command runs and writes, unwrapped
    assert "Custom command: the hook score(self, args) of mrl_hooks.py" in said
    assert "writes what the hook writes" in said


def test_the_public_hook_object_exposes_the_project(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hooks(
        project,
        """
def where(mrl, args):
    exp = mrl.load_exp(args.expId)
    print(mrl.basedir.name, mrl.outdir.name, mrl.cfg["outdir"], len(mrl.experiments()),
          exp.id, exp.record["description"], mrl.sub_experiments(exp))
""",
        {"where": {}},
    )
    assert main(["new", "d1"]) == 0
    capsys.readouterr()
    assert main(["where", "1"]) == 0
    assert capsys.readouterr().out.strip() == "proj output output 1 1 d1 []"


def test_a_before_hook_that_raises_stops_the_command_before_it_does_anything(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hooks(
        project,
        """
def before_new(mrl, args):
    raise ValueError("GPU quota exceeded")
""",
        {"before_new": {}},
    )
    assert main(["new"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "before_new" in err and "GPU quota exceeded" in err and "mrl_hooks.py line 3" in err
    assert list((project / "output").iterdir()) == []


def test_a_hook_defined_with_the_wrong_signature_names_its_def_line(project: Path) -> None:
    hooks(project, "import os\n\n\ndef score(mrl):\n    return 0\n", {"score": {}})
    res = run_mrl("score", cwd=project)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "hook score raised TypeError: score() takes 1 positional argument but 2 were given" in res.stderr
    assert "(mrl_hooks.py line 4)" in res.stderr


def test_a_registered_hook_that_is_not_defined_is_a_clear_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hooks(project, "def other(mrl, args):\n    pass\n", {"before_new": {}})
    assert main(["new"]) == 1
    err = capsys.readouterr().err
    assert "'before_new' is registered in .mrl.cfg" in err and "mrl_hooks.py" in err


def test_a_hooks_file_with_a_syntax_error_names_file_and_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hooks(project, "def before_new(mrl, args):\n    return (\n\n", {"before_new": {}})
    assert main(["new"]) == 1
    err = capsys.readouterr().err
    assert "mrl_hooks.py:2" in err and "syntax error" in err


def test_a_hooks_file_that_fails_to_import_names_file_and_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hooks(project, "import os\nimport not_a_module_xyz\n", {"before_new": {}})
    assert main(["new"]) == 1
    err = capsys.readouterr().err
    assert "mrl_hooks.py:2" in err and "not_a_module_xyz" in err


def test_a_missing_hooks_file_is_a_clear_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    set_cfg(project, hooks={"after_new": {}})
    commit_all(project)
    assert main(["new"]) == 1
    assert "mrl_hooks.py does not exist" in capsys.readouterr().err
    assert not (project / "output" / "0001").exists()  # said before mrl new made anything


def test_an_after_hook_missing_from_the_file_is_an_error_before_the_command_runs(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hooks(project, "def before_new(mrl, args):\n    pass\n", {"after_new": {}})
    assert main(["new"]) == 1
    assert "'after_new' is registered in .mrl.cfg" in capsys.readouterr().err
    assert not (project / "output" / "0001").exists()


def test_debug_shows_the_traceback_and_bugs_exit_3(project: Path) -> None:
    hooks(project, "def before_ls(mrl, args):\n    raise KeyError('x')\n", {"before_ls": {}})
    r = run_mrl("ls", cwd=project)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    r = run_mrl("ls", cwd=project, env={"MRL_DEBUG": "1"})
    assert r.returncode == 1 and "Traceback" in r.stderr
    # An unexpected exception inside mrl itself (a bug) exits 3 with the traceback: one put
    # into its record reader at start-up (a file where the output folder is, the bug this
    # test once used, is an environment line now: f17e561)
    set_cfg(project, hooks={})
    bug = project.parent / "bug"
    bug.mkdir()
    (bug / "sitecustomize.py").write_text(
        "import metarunlog.jsonio as j\ndef read_bytes(*a, **k):\n    raise ZeroDivisionError('a bug')\n"
        "j.read_bytes = read_bytes\n"
    )
    r = run_mrl("ls", cwd=project, env={"PYTHONPATH": f"{bug}{os.pathsep}{REPO_ROOT}"})
    assert r.returncode == 3 and "Traceback" in r.stderr and "internal error" in r.stderr


def test_what_a_user_file_prints_while_imported_goes_to_stderr(project: Path) -> None:
    # the original's example mrl_analyze.py prints its matplotlib backend when imported
    (project / "mrl_analyze.py").write_text("print('backend agg')\ndef metrics(subExpDir):\n    return {'m': 1}\n")
    (project / "output").mkdir(exist_ok=True)
    assert main(["new"]) == 0
    assert main(["makebatch"]) == 0
    r = run_mrl("table", "--json", cwd=project)
    assert r.returncode == 0, r.stderr
    assert [row["m"] for row in json.loads(r.stdout)] == [1] * 9
    assert "backend agg" in r.stderr


def test_a_hook_writing_into_a_closed_pipe_or_a_full_disk_is_mrls_output_error_not_the_hooks(
    project: Path,
) -> None:
    """`mrl score | head -1` said "hook score raised BrokenPipeError" (exit 1), and
    `mrl score > /dev/full` "hook score raised OSError ... '<stdout>'"."""
    import os
    import subprocess
    import sys

    from tests.helpers.repo import GIT_ENV, REPO_ROOT, run_mrl_into_head

    hooks(project, "def score(self, args):\n    for i in range(200000):\n        print('line', i)\n", {"score": {}})
    assert main(["new"]) == 0
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}
    piped = run_mrl_into_head("score", cwd=project)
    assert (piped.returncode, piped.stdout, piped.stderr) == (0, "line 0\n", "")
    with open("/dev/full", "w") as full:
        lost = subprocess.run(
            [sys.executable, "-m", "metarunlog", "score"],
            cwd=project,
            env=env,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert lost.returncode == 1
    assert lost.stderr.startswith("mrl: error: no space left on device: <stdout> (only the output is lost"), lost.stderr
    assert "raised" not in lost.stderr


@pytest.mark.parametrize(
    ("xargs", "said"),
    [
        ({"h": 1}, "xarg 'h' clashes with another option (conflicting option string: -h)"),
        ({"help": 1}, "xarg 'help' clashes with another option (conflicting option string: --help)"),
        (
            {"gammaN": 1, "gamma_n": 2},
            "xarg 'gamma_n' clashes with another option (conflicting option string: --gamma-n)",
        ),
        ({"command": 1}, "xarg 'command' is a name mrl sets on args itself (command, expId, mode)"),
    ],
)
def test_a_hook_xarg_that_cannot_be_an_option_is_one_line_and_other_commands_still_work(
    project: Path, xargs: dict, said: str
) -> None:
    """An xarg `h` (or two that both become --gamma-n) crashed every mrl command, `mrl ls`
    included, with argparse's 'conflicting option string' traceback."""
    hooks(project, "def score(self, args):\n    print('scored')\n", {"score": xargs})
    r = run_mrl("score", cwd=project)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.splitlines() == [f"mrl: error: .mrl.cfg hooks: score's {said}: rename it"]
    assert run_mrl("ls", cwd=project).returncode == 0
    listed = run_mrl("--help", cwd=project)  # the other commands are still listed, and this one says why not
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    assert "score     (cannot be run: .mrl.cfg hooks: score's xarg" in listed.stdout and "    analyze" in listed.stdout


def test_an_after_hook_runs_only_when_its_command_succeeded(project: Path) -> None:
    # after_run ran after a run that failed (exit 1) and after one interrupted (exit 130):
    # an after_run that posts "batch finished" or starts the analysis then lied
    hooks(
        project,
        """
def before_run(mrl, args):
    open("calls.txt", "a").write("before\\n")
def after_run(mrl, args):
    open("calls.txt", "a").write("after\\n")
def after_score(mrl, args):
    open("calls.txt", "a").write("after score\\n")
def score(mrl, args):
    return int(args.code)
""",
        {"before_run": {}, "after_run": {}, "score": {"code": "0"}, "after_score": {}},
    )
    (project / "conf.lua").write_text("x = {{code}}\n-- MRL:grid['code'] = [0, 3]\n")
    set_cfg(project, run={"command": "exit {{code}}"})
    commit_all(project, "failing run")
    assert run_mrl("new", cwd=project).returncode == 0
    assert run_mrl("makebatch", cwd=project).returncode == 0
    failed = run_mrl("run", cwd=project)
    assert failed.returncode == 1
    assert (project / "calls.txt").read_text().splitlines() == ["before"]
    assert "mrl: note: after_run not called: mrl run exited 1" in failed.stderr
    ok = run_mrl("run", "1/1", cwd=project)  # 001 is done: nothing left to fail
    assert ok.returncode == 0, ok.stderr
    assert (project / "calls.txt").read_text().splitlines() == ["before", "before", "after"]
    # a custom command's after_ runs whenever it returned, its exit code being its own (the original's way)
    assert run_mrl("score", "-code", "2", cwd=project).returncode == 2
    assert (project / "calls.txt").read_text().splitlines()[3:] == ["after score"]


def test_an_after_hook_is_not_called_after_a_dry_run(project: Path) -> None:
    # `mrl makebatch --dry-run` called after_makebatch (the original's example writes
    # launch.sh from the sub-experiments; a hook that submits the batch submitted it), and
    # `mrl run --dry-run` called after_run: a preview had the hooks' side effects
    hooks(
        project,
        """
def after_makebatch(mrl, args):
    open("calls.txt", "a").write("after makebatch\\n")
def after_run(mrl, args):
    open("calls.txt", "a").write("after run\\n")
""",
        {"after_makebatch": {}, "after_run": {}},
    )
    set_cfg(project, run={"command": "true"})
    commit_all(project, "run command")
    assert run_mrl("new", cwd=project).returncode == 0
    preview = run_mrl("makebatch", "--dry-run", cwd=project)
    assert preview.returncode == 0, preview.stderr
    assert "mrl: note: after_makebatch not called: --dry-run" in preview.stderr
    assert not (project / "calls.txt").exists()
    assert run_mrl("makebatch", cwd=project).returncode == 0
    preview = run_mrl("run", "--dry-run", cwd=project)
    assert preview.returncode == 0 and "mrl: note: after_run not called: --dry-run" in preview.stderr
    assert (project / "calls.txt").read_text().splitlines() == ["after makebatch"]


def test_what_a_wrapping_hook_prints_goes_to_stderr_when_the_command_prints_json_or_csv(project: Path) -> None:
    # a before_table that prints a banner made `mrl table --json | jq` fail: its line came
    # first on stdout (as mrl_analyze.py's metrics() prints already go to stderr)
    hooks(
        project,
        "def before_table(mrl, args):\n    print('banner')\ndef after_ls(mrl, args):\n    print('listed')\n",
        {"before_table": {}, "after_ls": {}},
    )
    assert run_mrl("new", cwd=project).returncode == 0
    assert run_mrl("makebatch", cwd=project).returncode == 0
    for args in (["table", "--json"], ["table", "--csv"], ["ls", "--json"]):
        proc = run_mrl(*args, cwd=project)
        assert proc.returncode == 0, proc.stderr
        if "--json" in args:
            json.loads(proc.stdout)
        assert "banner" not in proc.stdout and "listed" not in proc.stdout, proc.stdout
        assert ("banner" if args[0] == "table" else "listed") in proc.stderr
    plain = run_mrl("table", cwd=project)  # for a person, the hook's lines stay on stdout
    assert plain.stdout.startswith("banner\n")
