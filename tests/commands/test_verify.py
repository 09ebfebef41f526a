"""mrl verify (= mrl info --verify): the command's defaults, exit codes and errors. What
counts as changed, missing or added is tested with the snapshots in tests/test_snapshot.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

from metarunlog.main import main
from tests.helpers.repo import commit_all, git, run_mrl, sha256_project


def new(*args: str) -> Path:
    assert main(["new", "-cp", "no", *args]) == 0
    return sorted((Path.cwd() / "output").glob("0*"))[-1]


def replace(path: Path, text: str) -> None:
    """Write a new file over `path` (code/ files are read-only links into the store)."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_verify_of_an_untouched_snapshot_says_it_matches_and_exits_0(project: Path) -> None:
    exp = new()
    proc = run_mrl("verify", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{exp.name}: code/ matches commit ") and proc.stdout.endswith(" files)\n")


def test_verify_and_info_verify_say_the_same_and_exit_1_on_a_change(project: Path) -> None:
    exp = new()
    replace(exp / "code" / "train.py", "print('edited in place')\n")
    a = run_mrl("verify", cwd=project)
    b = run_mrl("info", "--verify", cwd=project)
    assert a.returncode == b.returncode == 1
    assert (a.stdout, a.stderr) == (b.stdout, b.stderr)
    assert a.stdout.split() == ["changed", "train.py"]
    assert a.stderr == f"mrl: {exp.name}: code/ differs from commit {_hash(exp)[:10]}: 1 changed\n"


def test_verify_counts_each_kind_of_difference(project: Path) -> None:
    exp = new()
    replace(exp / "code" / "train.py", "edited\n")
    (exp / "code" / "conf.lua").unlink()
    (exp / "code" / "extra.txt").write_text("new\n")
    proc = run_mrl("verify", cwd=project)
    assert proc.returncode == 1
    assert proc.stderr.endswith(": 1 changed, 1 missing, 1 added\n")


def test_verify_defaults_to_the_experiment_the_cwd_is_in(project: Path) -> None:
    first = new()
    replace(first / "code" / "train.py", "edited\n")
    new()
    assert run_mrl("verify", cwd=project).returncode == 0  # the newest is untouched
    assert run_mrl("verify", cwd=first / "code").returncode == 1
    assert run_mrl("verify", "1", cwd=project).returncode == 1


def test_verify_of_a_notclean_experiment_compares_with_its_commit_plus_its_diff(project: Path) -> None:
    (project / "train.py").write_text("print('uncommitted')\n")
    exp = new("--notclean")
    proc = run_mrl("verify", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " + .mrl.diff (" in proc.stdout
    assert (exp / "code" / "train.py").read_text() == "print('uncommitted')\n"


def test_verify_of_a_record_without_a_commit_is_one_error_line(project: Path) -> None:
    exp = new()
    record = json.loads((exp / ".mrl").read_text())
    del record["gitHash"]
    (exp / ".mrl").write_text(json.dumps(record))
    proc = run_mrl("verify", cwd=project)
    assert proc.returncode == 1
    assert proc.stderr == f"mrl: error: {exp / '.mrl'} names no gitHash: there is no commit to verify code/ against\n"


def _hash(exp: Path) -> str:
    return json.loads((exp / ".mrl").read_text())["gitHash"]


def test_verify_reports_the_files_of_a_folder_replaced_by_a_file_as_missing(project: Path) -> None:
    import shutil

    (project / "pkg").mkdir()
    (project / "pkg" / "model.py").write_text("LAYERS = 3\n")
    commit_all(project, "a package")
    exp = new()
    shutil.rmtree(exp / "code" / "pkg")
    (exp / "code" / "pkg").write_text("not a folder\n")
    proc = run_mrl("verify", cwd=project)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines() == ["added    pkg", "missing  pkg/model.py"]
    assert proc.stderr.endswith(": 1 missing, 1 added\n")


def test_verify_of_an_experiment_without_a_code_folder_is_one_error_line(project: Path) -> None:
    import shutil

    exp = new()
    shutil.rmtree(exp / "code")
    proc = run_mrl("verify", cwd=project)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"mrl: error: {exp / 'code'} is missing: there is no snapshot to verify\n"
    (exp / "code").write_text("")
    proc = run_mrl("verify", cwd=project)
    assert proc.returncode == 1
    assert proc.stderr == f"mrl: error: {exp / 'code'} is not a folder: there is no snapshot to verify\n"


def test_info_verify_with_json_or_path_is_refused_not_silently_half_done(project: Path) -> None:
    new()
    for cmd in (["info", "--verify", "--json"], ["info", "--path", "--verify"], ["last", "--json", "--verify"]):
        proc = run_mrl(*cmd, cwd=project)
        assert (proc.returncode, proc.stdout) == (1, ""), cmd
        assert proc.stderr.startswith("mrl: error: argument --") and "not allowed with argument" in proc.stderr
        assert proc.stderr.count("\n") == 1


def test_verify_of_an_original_experiment_whose_hook_cloned_code_leaves_its_git_folder_out(project: Path) -> None:
    import shutil

    from tests.helpers.repo import git

    exp = new()
    commit = json.loads((exp / ".mrl").read_text())["gitHash"]
    shutil.rmtree(exp / "code")
    git(project, "clone", "-q", str(project), str(exp / "code"))  # the original's after_new hook
    git(exp / "code", "checkout", "-q", commit)
    proc = run_mrl("verify", cwd=project)
    assert proc.returncode == 1 and "added    .git/HEAD" in proc.stdout  # an mrl snapshot has no .git
    record = json.loads((exp / ".mrl").read_text())
    del record["snapshot"], record["mrlVersion"]  # as the original wrote it
    (exp / ".mrl").write_text(json.dumps(record))
    proc = run_mrl("verify", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"{exp.name}: code/ matches commit {commit[:10]}")
    assert "code/.git not compared" in proc.stderr
    replace(exp / "code" / "train.py", "edited\n")
    proc = run_mrl("verify", cwd=project)
    assert proc.returncode == 1 and proc.stdout == "changed  train.py\n"


def test_verify_prints_a_file_name_that_is_not_utf8_as_its_bytes_under_a_strict_utf8_locale(project: Path) -> None:
    import subprocess
    import sys

    from tests.helpers.repo import GIT_ENV, REPO_ROOT

    with open(os.path.join(os.fsencode(project), b"caf\xe9.csv"), "wb") as f:
        f.write(b"1,2\n")
    commit_all(project, "a latin-1 file name")
    exp = new()
    (exp / "code" / "train.py").unlink()
    os.unlink(os.path.join(os.fsencode(exp), b"code/caf\xe9.csv"))
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT), "PYTHONIOENCODING": "utf-8:strict"}  # en_US.UTF-8
    proc = subprocess.run([sys.executable, "-m", "metarunlog", "verify"], cwd=project, env=env, capture_output=True)
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == b"missing  caf\xe9.csv\nmissing  train.py\n"


def test_verify_of_a_notclean_experiment_whose_diff_is_gone_is_one_error_not_a_list_of_changes(
    project: Path,
) -> None:
    (project / "train.py").write_text("print('uncommitted')\n")
    exp = new("--notclean")
    (exp / ".mrl.diff").unlink()
    proc = run_mrl("verify", cwd=project)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.startswith(f"mrl: error: {exp.name} was made with --notclean, but its .mrl.diff is gone")
    assert proc.stderr.count("\n") == 1


def test_verify_piped_into_head_keeps_its_verdict(project: Path) -> None:
    """`mrl verify | head -1` exited 0 once head stopped reading (the closed pipe was taken
    for success), though code/ differed: under `set -o pipefail` a script saw a match."""
    from tests.helpers.repo import run_mrl_into_head

    exp = new()
    for i in range(5000):  # more than a pipe holds, so the writes hit the closed pipe
        (exp / "code" / f"added_{i:04d}.txt").write_text("x\n")
    proc = run_mrl_into_head("verify", cwd=project)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "added    added_0000.txt\n"
    assert proc.stderr == f"mrl: {exp.name}: code/ differs from commit {_hash(exp)[:10]}: 5000 added\n"


def test_verify_in_a_sha256_repository_hashes_as_the_repository_does(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`git init --object-format=sha256` names blobs by SHA-256: verify hashed with SHA-1
    and reported every file and symlink of an untouched snapshot as changed."""
    monkeypatch.chdir(tmp_path)
    repo = sha256_project(tmp_path / "proj256")
    exp = new()
    proc = run_mrl("verify", cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    replace(exp / "code" / "train.py", "print('edited')\n")
    os.unlink(exp / "code" / "latest.py")
    os.symlink(".mrl.cfg", exp / "code" / "latest.py")
    proc = run_mrl("verify", cwd=repo)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == ["changed  latest.py  (symlink target)", "changed  train.py"]


def test_verify_of_another_projects_experiment_says_where_to_run_it(project: Path, tmp_path: Path) -> None:
    """Given by path from another project, whose repository lacks the commit: mrl said
    "history rewritten?", which it was not."""
    exp = new()
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    (other / "x.py").write_text("x = 1\n")
    assert run_mrl("init", cwd=other).returncode == 0
    commit_all(other, "another project")
    proc = run_mrl("verify", str(exp), cwd=other)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "history rewritten" not in proc.stderr
    assert proc.stderr == (
        f"mrl: error: {exp} was made in another project ({project}), whose repository holds its commit "
        f"{json.loads((exp / '.mrl').read_text())['gitHash'][:10]}: run `mrl verify {exp}` there\n"
    )
    assert run_mrl("verify", str(exp), cwd=project).returncode == 0


def test_verify_of_a_path_inside_an_experiment_verifies_that_experiment(project: Path) -> None:
    """`mrl verify output/0001/code` (the snapshot folder, the form a tab completion gives)
    said "not an experiment": any path inside one names the experiment it is in."""
    first = new()
    replace(first / "code" / "train.py", "edited\n")
    new()  # the newest is untouched: a fallback to it would exit 0
    for ref in ("output/0001/code", "output/0001/code/", "output/0001/code/conf.lua", "output/0001/.mrl"):
        proc = run_mrl("verify", ref, cwd=project)
        assert proc.returncode == 1, (ref, proc.stderr)
        assert proc.stdout.split() == ["changed", "train.py"] and "Traceback" not in proc.stderr
        assert run_mrl("info", "--verify", ref, cwd=project).stdout == proc.stdout
    proc = run_mrl("verify", "output/0002/code", cwd=project)
    assert proc.returncode == 0 and proc.stdout.startswith("0002: code/ matches commit ")
    gone = run_mrl("verify", "output/0001/no-such-file", cwd=project)
    assert gone.returncode == 1
    assert gone.stderr.startswith("mrl: error: 'output/0001/no-such-file' is not an experiment")


def test_verify_of_a_path_inside_a_copy_of_an_experiment_verifies_the_copy(project: Path, tmp_path: Path) -> None:
    import shutil

    exp = new()
    copy = tmp_path / "backup" / exp.name
    shutil.copytree(exp, copy, symlinks=True)
    replace(copy / "code" / "train.py", "edited in the copy\n")
    proc = run_mrl("verify", str(copy / "code"), cwd=project)
    assert proc.returncode == 1 and proc.stdout.split() == ["changed", "train.py"], proc.stderr
    assert run_mrl("verify", str(exp / "code"), cwd=project).returncode == 0


def test_a_symlink_of_a_core_symlinks_false_repository_is_a_symlink_in_code_and_verifies(project: Path) -> None:
    """git's checkout under `core.symlinks=false` (a clone made on Windows, a repository
    copied off a FAT drive) writes a symlink as a small writable file holding its target:
    code/ got that, and verify then said `changed latest.py (no longer a symlink)` of a
    snapshot nobody touched."""
    os.symlink("train.py", project / "latest.py")
    commit_all(project, "a symlink")
    git(project, "config", "core.symlinks", "false")
    made = run_mrl("new", "-cp", "no", "x", cwd=project)
    assert made.returncode == 0, made.stderr
    code = Path(made.stdout.splitlines()[-1]) / "code"
    assert os.readlink(code / "latest.py") == "train.py"
    proc = run_mrl("verify", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
