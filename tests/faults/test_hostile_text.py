"""Hostile text (issue 10): digits that are not ASCII, bytes that are not UTF-8, NUL and
lone surrogates. Each is one `mrl: error:` line and exit 1, or works; never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backends.contract import make_experiment
from tests.helpers.repo import REPO_ROOT, commit_all, run_mrl, set_cfg


def _no_traceback(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr


@pytest.mark.parametrize("ref", ["²", "1/²", "²/1", "1-²"])
@pytest.mark.parametrize("command", ["status", "info", "table", "verify", "tag"])
def test_a_digit_that_is_not_ascii_is_not_an_id_and_never_a_traceback(project: Path, command: str, ref: str) -> None:
    # Before: '²'.isdigit() is True but int('²') fails: a ValueError traceback in every command.
    make_experiment(project, [{"x": 1}], "true")
    args = [command, ref] + (["+x"] if command == "tag" else [])
    r = run_mrl(*args, cwd=project)
    _no_traceback(r)
    assert r.returncode == 1 and r.stderr.startswith("mrl: error:"), r.stderr


@pytest.mark.parametrize("ref", ["١", "1/١", "1-١"])
def test_ids_are_ascii_digits_only(project: Path, ref: str) -> None:
    # Before: Arabic-Indic '١' read as 1 (Python's int and \d take any decimal digit), so
    # `mrl status 1-١٠` acted on 1-10 while the message said "an id like 3".
    make_experiment(project, [{"x": 1}], "true")
    r = run_mrl("status", ref, cwd=project)
    _no_traceback(r)
    assert r.returncode == 1 and r.stderr.startswith("mrl: error:"), r.stderr


def test_the_api_refuses_a_digit_that_is_not_ascii_with_mrls_message(project: Path) -> None:
    make_experiment(project, [{"x": 1}], "true")
    code = (
        "from metarunlog.api import load_table\n"
        "try:\n    load_table('²')\nexcept Exception as e:\n    print(type(e).__name__, e)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, env=_env())
    assert "NotAnExperiment" in r.stdout or "MrlError" in r.stdout, r.stdout + r.stderr


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def _bytes_argv(*args: bytes, cwd: Path) -> subprocess.CompletedProcess[str]:
    """mrl with arguments that are not UTF-8 (a latin-1 terminal, pasted bytes)."""
    r = subprocess.run(
        [os.fsencode(sys.executable), b"-m", b"metarunlog", *args], cwd=cwd, capture_output=True, env=_env()
    )
    out, err = (s.decode(errors="replace") for s in (r.stdout, r.stderr))
    return subprocess.CompletedProcess(r.args, r.returncode, out, err)


@pytest.mark.parametrize(
    "args",
    [[b"new", b"caf\xe9"], [b"rerun", b"--description", b"caf\xe9"], [b"reproduce", b"--description", b"caf\xe9"]],
    ids=["new", "rerun", "reproduce"],
)
def test_a_description_that_is_not_utf8_is_one_error_line_and_makes_nothing(project: Path, args: list[bytes]) -> None:
    # Before: `mrl new $'caf\xe9'` was a UnicodeEncodeError traceback writing .mrl.note.
    make_experiment(project, [{"x": 1}], "true")
    before = sorted(p.name for p in (project / "output").iterdir())
    r = _bytes_argv(*args, cwd=project)
    _no_traceback(r)
    assert r.returncode == 1 and r.stderr.startswith("mrl: error:") and "UTF-8" in r.stderr, r.stderr
    assert sorted(p.name for p in (project / "output").iterdir()) == before


def _template_project(project: Path, params: str) -> None:
    (project / "conf.json").write_text('{"v": {{ v | tojson }}}\n// MRL:params = ' + params + "\n")
    set_cfg(project, confTemplFile="conf.json", copyFiles=["conf.json"], run={"command": "echo {{v}}"})
    commit_all(project, "a json template")
    assert run_mrl("new", "x", cwd=project).returncode == 0


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ("[{'v': 'a\\x00b'}]", "NUL"),
        ("[{'v': '\\ud800'}]", "surrogate"),
        ("[{'v': ['ok', {'k': '\\udcff'}]}]", "UTF-8"),
    ],
    ids=["nul", "lone-surrogate", "nested"],
)
def test_a_param_value_no_file_or_command_can_hold_is_refused_at_makebatch(
    project: Path, params: str, says: str
) -> None:
    # Before: makebatch wrote them; run then failed each ("embedded null byte"), and table
    # and analyze were UnicodeEncodeError tracebacks on the surrogate.
    _template_project(project, params)
    r = run_mrl("makebatch", cwd=project)
    _no_traceback(r)
    assert r.returncode == 1 and r.stderr.startswith("mrl: error:") and says in r.stderr, r.stderr
    assert not (project / "output" / "0001" / "001").exists()


def test_a_set_value_that_is_not_utf8_is_refused_at_makebatch(project: Path) -> None:
    # Before: `--set v=$'\xff'` ran, then `mrl analyze` was a UnicodeEncodeError traceback.
    _template_project(project, "[{'v': 1}]")
    r = _bytes_argv(b"makebatch", b"--set", b"v=\xff", cwd=project)
    _no_traceback(r)
    assert r.returncode == 1 and r.stderr.startswith("mrl: error:") and "UTF-8" in r.stderr, r.stderr


def test_a_project_in_a_folder_whose_name_is_not_utf8_works_through_every_step(tmp_path: Path) -> None:
    # Before: `mrl quickstart $'/x/caf\xe9'` stopped in `mrl init` (UnicodeDecodeError reading
    # git's answer), and so did new, run and verify; analyze could not write the report, and
    # reproduce failed comparing the rendered files.
    folder = tmp_path / os.fsdecode(b"caf\xe9")
    r = _bytes_argv(b"quickstart", os.fsencode(folder), cwd=tmp_path)
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert (folder / "output" / "0001" / "analysis" / "index.html").is_file()
    for args in ([b"verify"], [b"reproduce", b"1"], [b"run", b"2", b"1"], [b"analyze", b"2"], [b"diff", b"1", b"2"]):
        r = _bytes_argv(*args, cwd=folder)
        _no_traceback(r)
        assert r.returncode == 0, (args, r.stderr)
    assert b"caf\xe9" in (folder / "output" / "0002" / "analysis" / "index.html").read_bytes()


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_text_the_terminals_encoding_cannot_show_is_escaped_not_a_traceback(project: Path, encoding: str) -> None:
    # Before: under a latin-1 or ASCII terminal (PYTHONIOENCODING, LANG=en_US.ISO-8859-1),
    # `mrl ls -desc` or `mrl info` of a description in Japanese was a UnicodeEncodeError traceback.
    assert run_mrl("new", "-cp", "no", "日本 test", cwd=project).returncode == 0
    for args in (["ls", "-desc"], ["info", "last"], ["last"]):
        r = subprocess.run(
            [sys.executable, "-m", "metarunlog", *args],
            cwd=project,
            capture_output=True,
            env={**_env(), "PYTHONIOENCODING": encoding},
        )
        err = r.stderr.decode(errors="replace")
        assert "Traceback" not in err and r.returncode == 0, err
        assert b"\\u65e5\\u672c test" in r.stdout, r.stdout


def test_a_config_saved_as_latin1_is_one_error_line_naming_the_line(project: Path) -> None:
    # Before: a .mrl.cfg (or EXPDIR/.mrl.cfg) an editor saved as latin-1 was a
    # UnicodeDecodeError traceback in every command, `mrl ls` included.
    cfg = project / ".mrl.cfg"
    good = cfg.read_bytes()
    cfg.write_bytes(good.replace(b"{", b'{\n  "name": "caf\xe9",', 1))
    r = run_mrl("ls", cwd=project)
    _no_traceback(r)
    assert r.returncode == 1 and r.stderr.startswith(f"mrl: error: {cfg}: line 2 column 15: byte 0xe9"), r.stderr
    cfg.write_bytes(good)
    exp = make_experiment(project, [{"x": 1}], "true")
    (exp.dir / ".mrl.cfg").write_bytes(b'{"run": {"command": "echo caf\xe9"}}')
    r = run_mrl("run", cwd=project)
    _no_traceback(r)
    assert r.returncode == 1 and "not UTF-8" in r.stderr and str(exp.dir / ".mrl.cfg") in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("text", "key"),
    [('{"run": {"command": "echo \\u0000"}}', "run.command"), ('{"name": "\\ud800"}', "name")],
    ids=["nul", "lone-surrogate"],
)
def test_a_config_string_no_file_or_command_can_hold_is_refused_naming_its_key(
    project: Path, text: str, key: str
) -> None:
    # Before: a "\ud800" escape in .mrl.cfg loaded, then `mrl analyze` was a UnicodeEncodeError
    # traceback; a NUL in run.command failed every run on "embedded null byte".
    exp = make_experiment(project, [{"x": 1}], "true")
    (exp.dir / ".mrl.cfg").write_text(text)
    for args in (["run"], ["analyze"]):
        r = run_mrl(*args, cwd=project)
        _no_traceback(r)
        assert r.returncode == 1 and f".mrl.cfg: {key}: " in r.stderr, r.stderr
