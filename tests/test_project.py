"""metarunlog/project.py: finding the project from any folder, experiment ids, `last`, and
the names hook files written for the original metarunlog call (real git repositories)."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections import OrderedDict
from pathlib import Path

import pytest

from metarunlog.errors import ConfigError, NotAnExperiment
from metarunlog.main import main
from metarunlog.project import LegacyPath, Project, find_basedir
from tests.backends.contract import make_experiment
from tests.helpers.repo import commit_all, git, run_mrl, set_cfg


def new(n: int = 1) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        for _ in range(n):
            assert main(["new", "-cp", "no"]) == 0


def test_the_project_is_found_from_any_folder_below_it(project: Path) -> None:
    (project / "src" / "deep").mkdir(parents=True)
    assert find_basedir(project / "src" / "deep") == project
    assert Project.find(project / "src").basedir == project


def test_a_project_in_a_subfolder_of_its_repository_is_found_there(git_repo: Path, monkeypatch) -> None:
    sub = git_repo / "projA"
    sub.mkdir()
    monkeypatch.chdir(sub)
    assert main(["init"]) == 0
    assert find_basedir(sub) == sub
    assert find_basedir(git_repo) is None


def test_a_cfg_outside_any_git_work_tree_is_no_project(tmp_path: Path) -> None:
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / ".mrl.cfg").write_text("{}")
    assert find_basedir(tmp_path / "loose") is None
    with pytest.raises(ConfigError, match="run `mrl init`"):
        Project.find(tmp_path / "loose")


def test_from_inside_an_experiment_or_its_code_snapshot_the_project_is_found(project: Path) -> None:
    new()
    exp = Project.find(project).load_exp("last")
    assert (exp.dir / "code" / ".mrl.cfg").is_file()  # the snapshot holds a copy of the project's
    (exp.dir / ".mrl.cfg").write_text("{}")  # and an experiment may hold overrides
    assert find_basedir(exp.dir / "code") == project
    assert find_basedir(exp.dir) == project


def test_experiment_ids_are_the_folders_named_by_the_format_in_numeric_order(project: Path) -> None:
    new(3)
    out = project / "output"
    (out / "0010").mkdir()
    (out / "notes").mkdir()
    (out / "7").mkdir()  # not what {expId:04d} makes
    p = Project.find(project)
    assert p.experiment_ids() == [1, 2, 3, 10]
    assert p.last_id() == 10
    assert [e.name for e in p.experiments()] == ["0001", "0002", "0003", "0010"]


def test_a_missing_outdir_says_to_create_it_or_fix_the_config(project: Path) -> None:
    set_cfg(project, outdir="nowhere")
    with pytest.raises(ConfigError, match=r"the output directory .*nowhere does not exist"):
        Project.find(project).experiment_ids()


def test_load_exp_takes_an_id_a_padded_id_last_or_a_path(project: Path) -> None:
    new(2)
    p = Project.find(project)
    first = project / "output" / "0001"
    assert p.load_exp(1).dir == first
    assert p.load_exp("0001").dir == first
    assert p.load_exp("1").dir == first
    assert p.load_exp("last").id == 2
    assert p.load_exp(str(first)).id == 1
    assert p.load_exp(os.path.relpath(first)).id == 1


def test_with_no_ref_load_exp_is_the_experiment_the_cwd_is_in_else_the_newest(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new(2)
    p = Project.find(project)
    assert p.load_exp().id == 2
    (project / "output" / "0001" / "deep").mkdir()
    monkeypatch.chdir(project / "output" / "0001" / "deep")
    assert p.load_exp().id == 1


def test_a_bad_ref_is_a_user_error_that_says_what_to_give(project: Path) -> None:
    p = Project.find(project)
    with pytest.raises(NotAnExperiment, match="no experiment yet: make one with `mrl new`"):
        p.load_exp("last")
    new()
    with pytest.raises(NotAnExperiment, match="no experiment 5 in .*: see `mrl ls`"):
        p.load_exp(5)
    with pytest.raises(NotAnExperiment, match="'train.py' is not an experiment"):
        p.load_exp("train.py")
    with pytest.raises(NotAnExperiment, match="is not an experiment"):
        p.load_exp(str(project / "output" / "0001" / "code"))  # inside one, but not its folder


def test_a_folder_without_a_record_is_not_an_experiment(project: Path) -> None:
    (project / "output" / "0004").mkdir()
    with pytest.raises(NotAnExperiment, match="has no .mrl record"):
        Project.find(project).load_exp(4)


def test_update_last_link_points_last_at_the_experiment_but_never_back_to_an_older_one(project: Path) -> None:
    new(2)
    p = Project.find(project)
    link = project / "last"
    assert os.readlink(link) == os.path.join("output", "0002")
    p.update_last_link(p.load_exp(1))  # a slow older `mrl new` finishing after a newer one
    assert os.readlink(link) == os.path.join("output", "0002")
    (project / "output" / "0002" / ".mrl").unlink()
    os.rename(project / "output" / "0002", project / "gone")
    p.update_last_link(p.load_exp(1))  # the newer one is gone: last may move back
    assert os.readlink(link) == os.path.join("output", "0001")
    assert not any(n.name.startswith(".last.") for n in project.iterdir())


def test_basedir_and_outdir_concatenate_like_strings_for_original_hook_files(project: Path) -> None:
    p = Project.find(project)
    assert isinstance(p.outdir, LegacyPath)
    assert p.outdir + "/0001" == f"{project / 'output'}/0001"
    assert "cd " + p.basedir == f"cd {project}"
    assert (p.basedir / "x").name == "x"


def test_the_original_api_names_answer_as_the_original_did(project: Path) -> None:
    new(2)
    p = Project.find(project)
    assert p.lastExpId == 2 and p.expList == [1, 2] and p.expDirList == ["0001", "0002"]
    assert p._fmtSingleExp("7") == "0007" and p._fmtSubExp(3) == "003"
    assert p._checkValidExp("0002") and not p._checkValidExp("0003")
    assert p._resolveExpId("last") == 2 and p._resolveExpId(1) == 1
    assert p._getExpDir(1) == str(project / "output" / "0001")
    assert p._getExpDir(9, new=True) == str(project / "output" / "0009")
    conf = p._getExpConf(1)
    assert isinstance(conf, OrderedDict) and conf["gitHash"] == git(project, "rev-parse", "HEAD").strip()
    exp_id, exp_dir, exp_conf = p._loadExp("last")
    assert (exp_id, exp_dir) == (2, str(project / "output" / "0002")) and exp_conf["expId"] == 2
    assert p._expIsDoneIndicator(exp_dir) == "** "
    (Path(exp_dir) / ".mrl.done").write_text("")
    assert p._expIsDone(exp_dir) and p._expIsDoneIndicator(exp_dir) == "   "
    assert p._loadSubExp(Path(exp_dir) / "001") == {"subExpDir": str(Path(exp_dir) / "001"), "params": {}}
    assert p._relpathUser(Path.home() / "a" / "b") == "~/a/b"


# -- a symlinked outdir (`output -> /scratch/...`, issue 10) ------------------------------------


@pytest.fixture
def scratch_outdir(project: Path, tmp_path: Path) -> Path:
    """The project's outdir as a symlink to a folder elsewhere (`output -> /scratch/...`,
    usual under home quotas); returns the real folder."""
    real = tmp_path / "scratch" / "me" / "proj-output"
    real.mkdir(parents=True)
    (project / "output").rmdir()
    (project / "output").symlink_to(real)
    return real


def test_an_experiment_in_a_symlinked_outdir_finds_its_project_from_its_real_path(
    project: Path, scratch_outdir: Path
) -> None:
    exp = make_experiment(project, [{"x": 1}], "true")
    real = scratch_outdir / exp.name
    assert exp.dir.resolve() == real
    # what a Slurm task gets: the experiment's real path, nothing of the project above it
    assert find_basedir(real / "001") == project
    found = Project.find(real)
    assert found.basedir == project and found.load_exp(str(real)).id == exp.id


def test_cd_last_then_mrl_status_works_when_the_outdir_is_a_symlink(project: Path, scratch_outdir: Path) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], "true")
    assert run_mrl("run", str(exp.id), cwd=project).returncode == 0
    last = project / "last"
    assert last.is_symlink()
    # as a shell does it (PWD names the logical path, the kernel's cwd is the real one), and
    # as a program that only chdir()s (PWD says somewhere else)
    for cwd, pwd, names in (
        (last, last, ["001", "002"]),
        (last / "001", last / "001", ["001"]),
        (last, project, ["001", "002"]),
    ):
        proc = run_mrl("status", "--json", cwd=cwd, env={"PWD": str(pwd)})
        assert proc.returncode == 0, proc.stderr
        assert [(r["name"], r["state"]) for r in json.loads(proc.stdout)] == [(n, "done") for n in names]


def test_a_pwd_that_is_not_the_current_directory_is_ignored(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    proc = run_mrl("ls", cwd=project, env={"PWD": str(other)})
    assert proc.returncode == 0, proc.stderr


def test_a_record_naming_a_project_that_moved_is_one_error_naming_it(project: Path, scratch_outdir: Path) -> None:
    exp = make_experiment(project, [{"x": 1}], "true")
    record = json.loads((exp.dir / ".mrl").read_text())
    record["basedir"] = str(project.parent / "gone")
    (exp.dir / ".mrl").write_text(json.dumps(record))
    proc = run_mrl("status", cwd=scratch_outdir / exp.name, env={"PWD": os.fspath(scratch_outdir / exp.name)})
    assert proc.returncode == 1 and proc.stderr.startswith("mrl: error: ") and proc.stderr.count("\n") == 1
    assert f"of the project at {project.parent / 'gone'}" in proc.stderr and "not here" in proc.stderr


def test_a_symlinked_outdir_is_not_an_untracked_file_of_the_code(project: Path, scratch_outdir: Path) -> None:
    # `/output/` in .gitignore matches a folder, not a symlink: git lists `output` as untracked
    proc = run_mrl("new", "x", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "untracked" not in proc.stderr, proc.stderr
    set_cfg(project, gitFailUntrackedDefault="yes")
    commit_all(project, "fail on untracked files")
    proc = run_mrl("new", "y", cwd=project)
    assert proc.returncode == 0, proc.stderr  # mrl's own output is never "uncommitted changes"


def test_from_inside_a_copy_of_an_experiment_outside_the_outdir_commands_name_it_not_the_newest(
    project: Path, tmp_path: Path
) -> None:
    import shutil

    set_cfg(project, run={"command": "true"})
    commit_all(project, "run")
    for _ in range(2):
        assert main(["new"]) == 0
        assert main(["makebatch"]) == 0
    copy = tmp_path / "elsewhere" / "0001"
    shutil.copytree(project / "output" / "0001", copy, symlinks=True)
    for cwd in (copy, copy / "code", copy / "001"):
        for args in (["status"], ["run"], ["info"], ["tag", "+x"]):
            r = run_mrl(*args, cwd=cwd)
            assert (r.returncode, r.stdout) == (1, ""), (args, r.stdout, r.stderr)
            assert r.stderr.startswith(f"mrl: error: {copy} is an experiment folder outside {project / 'output'}")
            assert r.stderr.count("\n") == 1
    assert not list((project / "output" / "0002").glob("*/.mrl.status"))  # the newest one did not run
    assert run_mrl("status", "2", cwd=copy).returncode == 0  # naming one still works


def test_mrl_verify_checks_a_copy_of_an_experiment_where_it_is(project: Path, tmp_path: Path) -> None:
    import shutil

    assert main(["new"]) == 0
    assert main(["new"]) == 0
    copy = tmp_path / "backup" / "0001"
    shutil.copytree(project / "output" / "0001", copy, symlinks=True)
    for cwd, args in ((copy, ["verify"]), (copy / "code", ["info", "--verify"]), (project, ["verify", str(copy)])):
        r = run_mrl(*args, cwd=cwd)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.startswith("0001: code/ matches commit ")
    edited = copy / "code" / "train.py"
    edited.unlink()
    edited.write_text("edited in the copy\n")
    r = run_mrl("verify", cwd=copy)
    assert (r.returncode, r.stdout) == (1, "changed  train.py\n")
    assert run_mrl("verify", "1", cwd=copy).returncode == 0  # the project's own 0001 is untouched
    r = run_mrl("status", cwd=copy)
    assert r.returncode == 1 and "or check the copy's code/ with `mrl verify`" in r.stderr


@pytest.mark.parametrize("args", [("analyze", "1/2"), ("tag", "1/2", "+x"), ("analyze", "last/2"), ("analyze", "SUB")])
def test_a_sub_experiment_given_where_an_experiment_is_taken_says_which_experiment_to_give(
    project: Path, args: tuple[str, ...]
) -> None:
    from tests.helpers.records import done, make_exp
    from tests.helpers.repo import run_mrl

    exp = make_exp(project, [{"params": {"lr": 0.1}, "status": done()}, {"params": {"lr": 0.2}, "status": done()}])
    args = tuple(str(exp.subexp_dir(2)) if a == "SUB" else a for a in args)
    res = run_mrl(*args, cwd=project)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    said = "names sub-experiments of experiment 1, and this command takes an experiment: give 1"
    assert res.stderr.startswith("mrl: error: ") and said in res.stderr and len(res.stderr.splitlines()) == 1


@pytest.mark.parametrize("kind", ["a folder", "a FIFO", "a link to nothing"])
def test_a_mrl_cfg_that_is_no_file_is_said_so_not_missing(git_repo: Path, kind: str) -> None:
    """A folder, FIFO or dangling link named .mrl.cfg said 'no .mrl.cfg ...: run mrl init',
    though one is there (and mrl init refuses to write over it)."""
    cfg = git_repo / ".mrl.cfg"
    {"a folder": cfg.mkdir, "a FIFO": lambda: os.mkfifo(cfg), "a link to nothing": lambda: cfg.symlink_to("gone")}[
        kind
    ]()
    for command in ("ls", "status"):
        proc = run_mrl(command, cwd=git_repo, timeout=60)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        said = (
            f"mrl: error: {cfg} is {kind}, not a file: mrl reads the project's settings from a plain file "
            "there; remove it, or replace it with a file (`mrl init` writes one)\n"
        )
        assert proc.stderr == said
