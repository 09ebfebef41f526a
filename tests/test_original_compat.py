"""The original metarunlog's own files run unchanged (issue 11).

`tests/fixtures/original/` holds the original's default `.mrl.cfg` (as its `mrl init`
wrote it), its `mrl_hooks.py.example` and `mrl_analyze.py.example` (MIT, see the LICENSE
there). These tests set projects up with them and run them through mrl.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from metarunlog.main import main
from tests.helpers.repo import commit_all, git, run_mrl, set_cfg

ORIGINAL = Path(__file__).resolve().parent / "fixtures" / "original"
REPLACES = "hook {0} from mrl_hooks.py replaces the built-in mrl {0}; rename it to use the built-in"


def hooks(project: Path, source: str, registered: dict) -> None:
    (project / "mrl_hooks.py").write_text(source)
    set_cfg(project, hooks=registered)
    commit_all(project, "hooks")


def original_hooks(project: Path, registered: list[str]) -> None:
    """The original's example mrl_hooks.py, with the original default config's hooks entries."""
    cfg = json.loads((ORIGINAL / "default.mrl.cfg").read_text())
    shutil.copy(ORIGINAL / "mrl_hooks.py.example", project / "mrl_hooks.py")
    set_cfg(project, giturl=cfg["giturl"], hooks={k: cfg["hooks"][k] for k in registered})
    commit_all(project, "original hooks")


# -- a hook named like a built-in command replaces it ------------------------------------
@pytest.mark.parametrize("name", ["run", "status", "table", "cancel", "ls"])
def test_a_hook_named_like_a_builtin_replaces_it_and_says_so_once(project: Path, name: str) -> None:
    hooks(project, f"def {name}(self, args):\n    print('hooked', args.mode, args.expId)\n", {name: {}})
    assert run_mrl("new", cwd=project).returncode == 0
    r = run_mrl(name, cwd=project)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == f"hooked {name} 1"
    assert r.stderr.splitlines().count(REPLACES.format(name)) == 1
    assert run_mrl("--help", cwd=project).returncode == 0
    assert run_mrl(name, "--help", cwd=project).returncode == 0
    for other in ("info", "status", "table", "ls"):
        if other != name:
            r = run_mrl(other, cwd=project)
            assert r.returncode == 0, (other, r.stderr)
            assert REPLACES.format(name) not in r.stderr


def test_a_replaced_builtin_keeps_its_place_in_help_and_says_what_replaced_it(project: Path) -> None:
    hooks(project, "def run(self, args):\n    pass\n", {"run": {}, "table": {}})
    (project / "mrl_hooks.py").write_text("def run(self, args):\n    pass\ndef table(self, args):\n    pass\n")
    r = run_mrl("--help", cwd=project)
    assert r.returncode == 0
    assert "replaces the built-in mrl run" in r.stdout
    assert r.stdout.index("    run ") < r.stdout.index("    status ") < r.stdout.index("    table ")
    assert REPLACES.format("run") in r.stderr and REPLACES.format("table") in r.stderr


def test_before_and_after_hooks_wrap_a_replaced_builtin(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hooks(
        project,
        """
def before_run(self, args):
    print("before", args.expId)
def run(self, args):
    print("run", args.expId)
def after_run(self, args):
    print("after", args.expId)
""",
        {"before_run": {}, "run": {}, "after_run": {}},
    )
    assert main(["new"]) == 0
    capsys.readouterr()
    assert main(["run"]) == 0
    assert capsys.readouterr().out.splitlines() == ["before 1", "run 1", "after 1"]


# -- before_/after_ wrap any command, custom ones too -------------------------------------
def test_before_and_after_hooks_wrap_a_custom_command(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hooks(
        project,
        """
def before_score(self, args):
    print("before", args.epoch)
def score(self, args):
    print("score", args.epoch)
    return 4
def after_score(self, args):
    print("after", args.epoch)
""",
        {"after_score": {}, "score": {"epoch": 300}, "before_score": {}},
    )
    assert main(["new"]) == 0
    capsys.readouterr()
    assert main(["score", "-epoch", "7"]) == 4
    assert capsys.readouterr().out.splitlines() == ["before 7", "score 7", "after 7"]


def test_an_after_hook_never_becomes_a_command_of_its_own(project: Path) -> None:
    hooks(project, "def after_score(self, args):\n    print('after')\n", {"after_score": {}})
    r = run_mrl("--help", cwd=project)
    assert r.returncode == 0 and "after_score" not in r.stdout
    assert "hook after_score wraps the command 'score'" in r.stderr
    r = run_mrl("after_score", cwd=project)
    assert r.returncode == 1 and "invalid choice: 'after_score'" in r.stderr


# -- hooks never reach the project repository through git --------------------------------
def test_the_original_clone_hook_never_detaches_the_users_head(project: Path) -> None:
    original_hooks(project, ["after_new"])
    head = git(project, "rev-parse", "HEAD").strip()
    r = run_mrl("new", "cloned?", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "git clone" in r.stdout  # the hook ran: it prints its command
    assert git(project, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert git(project, "rev-parse", "HEAD").strip() == head
    assert git(project, "status", "--porcelain") == ""
    assert (project / "output" / "0001" / "code" / "train.py").is_file()  # mrl's snapshot


def test_git_inside_an_experiment_folder_does_not_find_the_project_from_a_hook(project: Path) -> None:
    hooks(
        project,
        """
import subprocess
def after_new(self, args):
    expId, expDir, expConfig = self._loadExp(args.expId)
    r = subprocess.run("cd code && git rev-parse --show-toplevel", shell=True, cwd=expDir,
                       capture_output=True, text=True)
    open(expDir + "/found.txt", "w").write(str(r.returncode) + " " + r.stdout + r.stderr)
    # a repository of the hook's own inside the experiment still works
    subprocess.run("git init -q own && cd own && git rev-parse --show-toplevel > ../own.txt",
                   shell=True, cwd=expDir, check=True)
""",
        {"after_new": {}},
    )
    assert main(["new"]) == 0
    exp = project / "output" / "0001"
    found = (exp / "found.txt").read_text()
    assert found.startswith("128 ") and "not a git repository" in found
    assert (exp / "own.txt").read_text().strip() == str((exp / "own").resolve())


# -- the `self` hooks receive: the original's API -----------------------------------------
def test_hooks_get_the_original_api_on_self(project: Path) -> None:
    hooks(
        project,
        """
import json
from collections import OrderedDict
def after_makebatch(self, args):
    expDir = self._getExpDir(args.expId)
    subs = self._getSubExperiments(expDir)
    sub = self._loadSubExp(expDir + "/" + subs[0])
    out = {
        "lastExpId": self.lastExpId, "expList": self.expList, "expDirList": self.expDirList,
        "fmtSub": self._fmtSubExp(3), "fmtExp": self._fmtSingleExp(2),
        "conf": isinstance(self._getExpConf(1), OrderedDict), "desc": self._getExpConf(1)["description"],
        "loaded": json.loads(json.dumps(self._loadExp(1)[2]))["expId"],
        "resolved": [self._resolveExpId("last"), self._resolveExpId("1"), self._resolveExpId(2),
                     self._resolveExpId(self.outdir + "/0001")],
        "done": self._expIsDone(expDir), "outdir": self.outdir + "/x", "basedir": self.basedir + "",
        "mode": args.mode, "sub": sub["params"], "handmade": self._loadSubExp(expDir + "/handmade"),
    }
    open(self.basedir + "/api.json", "w").write(json.dumps(out))
""",
        {"after_makebatch": {}},
    )
    assert main(["new", "first"]) == 0
    assert main(["new", "second"]) == 0
    assert main(["makebatch"]) == 0
    exp = project / "output" / "0002"
    got = json.loads((project / "api.json").read_text())
    assert got == {
        "lastExpId": 2,
        "expList": [1, 2],
        "expDirList": ["0001", "0002"],
        "fmtSub": "003",
        "fmtExp": "0002",
        "conf": True,
        "desc": "first",
        "loaded": 1,
        "resolved": [2, 1, 2, 1],
        "done": False,
        "outdir": str(project / "output") + "/x",
        "basedir": str(project),
        "mode": "makebatch",
        "sub": {"lr": 0.01, "wdecay": 0.1, "subExpId": "001"},  # the original had the folder name in params
        "handmade": {"subExpDir": str(exp) + "/handmade", "params": {}},
    }


def test_hooks_get_the_originals_run_location_and_command_param_helpers_on_self(project: Path) -> None:
    # the original's launch helpers, which hook files of its time called (AttributeError before)
    hooks(
        project,
        """
import json, os
def locs(self, args):
    expId, expDir, expConfig = self._loadExp(args.expId)
    params = self._getCmdParams(expConfig, args, "0001/002")
    os.mkdir(self.basedir + "/copy")
    self._copyConfigFrom(expDir, self.basedir + "/copy")
    try:
        self._getRunLocations(expId, "99", expConfig)
    except Exception as e:
        out_of_range = str(e)
    out = {
        "all": self._getRunLocations(expId, "all", expConfig, relativeTo=expDir),
        "one": self._getRunLocations(expId, "2", expConfig),
        "rel": self._getRunLocations(expId, "2", expConfig, relativeTo=self.basedir),
        "params": {k: params[k] for k in ("mrlOutdir", "mrlBasedir", "expId", "name", "relloc", "absloc", "who")},
        "copied": sorted(os.listdir(self.basedir + "/copy")), "out_of_range": out_of_range,
    }
    return json.dumps(out)
""",
        {"locs": {"who": "me"}},
    )
    run_mrl("new", "first", cwd=project, check=True)
    run_mrl("makebatch", cwd=project, check=True)
    res = run_mrl("locs", cwd=project, check=True)
    got = json.loads(res.stdout)
    exp, out = project / "output" / "0001", project / "output"
    assert got["all"] == [f"{i:03d}" for i in range(1, 10)]
    assert got["one"] == [str(exp / "002")] and got["rel"] == ["output/0001/002"]
    assert got["params"] == {
        "mrlOutdir": str(out),
        "mrlBasedir": str(project),
        "expId": 1,
        "name": json.loads((project / ".mrl.cfg").read_text())["name"],
        "relloc": "0001/002",
        "absloc": str(out / "0001" / "002"),
        "who": "me",
    }
    assert got["copied"] == ["conf.lua"] and "99" in got["out_of_range"]


def test_an_experiments_own_analysis_functions_replace_the_projects_as_in_the_original(project: Path) -> None:
    # the original set each key of EXPDIR/.mrl.cfg on its cfg: `"analysis_subexp": {}` there
    # turned the project's per-run plots off for that experiment; mrl merged them in
    (project / "mrl_analyze.py").write_text(
        "def proj_overview(expDir, outdir, subExpIds, Dparams):\n    return [('PROJECT OVERVIEW', 'text', None)]\n"
        "def exp_overview(expDir, outdir, subExpIds, Dparams):\n    return [('EXPERIMENT OVERVIEW', 'text', None)]\n"
        "def per_run(subExpDir, outdir, Dparams, subExpId):\n    return [('PER RUN ' + subExpId, 'text', None)]\n"
    )
    set_cfg(project, analysis_overview={"proj_overview": []}, analysis_subexp={"per_run": []})
    commit_all(project, "analysis")
    run_mrl("new", "first", cwd=project, check=True)
    run_mrl("makebatch", cwd=project, check=True)
    exp = project / "output" / "0001"
    (exp / ".mrl.cfg").write_text('{"analysis_overview": {"exp_overview": []}, "analysis_subexp": {}}\n')
    run_mrl("analyze", cwd=project, check=True)
    page = (exp / "analysis" / "index.html").read_text()
    assert "EXPERIMENT OVERVIEW" in page
    assert "PROJECT OVERVIEW" not in page and "PER RUN" not in page


def test_the_original_config_key_giturl_is_not_warned_about(project: Path) -> None:
    set_cfg(project, giturl="git@example.com:me/repo.git")
    commit_all(project, "giturl")
    r = run_mrl("ls", cwd=project)
    assert r.returncode == 0 and r.stderr == ""


# -- end to end: the original's default config, example hooks and analysis file ----------
CONF_LUA = """local cfg = {
    learning_rate = {{lr}},
    wdecay    = {{wdecay}},
    momentum  = 3, -- doesn't change
    numLayers = 5,
    logdir    = '../{{subExpId}}/',
}
-- MRL:grid['lr'] = [0.01, 0.04, 0.1]
-- MRL:grid['wdecay'] = [0.1, 1.0, 10.0]
"""


@pytest.fixture
def original_project(git_repo: Path) -> Path:
    """A project set up as the original's README says: `mrl init output` wrote the default
    .mrl.cfg, the example mrl_hooks.py and mrl_analyze.py (`.ix` -> `.loc`) sit beside it."""
    proj = git_repo
    (proj / ".mrl.cfg").write_bytes((ORIGINAL / "default.mrl.cfg").read_bytes())
    shutil.copy(ORIGINAL / "mrl_hooks.py.example", proj / "mrl_hooks.py")
    analyze = (ORIGINAL / "mrl_analyze.py.example").read_text()
    (proj / "mrl_analyze.py").write_text(analyze.replace("res.ix[", "res.loc["))
    (proj / "conf.lua").write_text(CONF_LUA)
    (proj / "output").mkdir()
    (proj / ".gitignore").write_text("output/\nlast\n__pycache__/\n")
    commit_all(proj, "metarunlog project")
    return proj


def test_the_original_default_config_hooks_and_analysis_run_end_to_end(original_project: Path) -> None:
    proj = original_project
    head = git(proj, "rev-parse", "HEAD").strip()
    # new: the after_new clone hook runs, and leaves the user's repository alone
    r = run_mrl("new", "does wdecay matter?", cwd=proj)
    assert r.returncode == 0, r.stderr
    assert "git clone git@github.rtp.raleigh.ibm.com" in r.stdout
    assert "warning" not in r.stderr  # no unknown-key warning for the original's giturl
    assert git(proj, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert git(proj, "rev-parse", "HEAD").strip() == head
    exp = proj / "output" / "0001"
    rec = json.loads((exp / ".mrl").read_text())
    assert rec["gitHash"] == head and rec["basedir"] == str(proj) and rec["gitFailUntracked"] == "no"
    assert (exp / "code" / "train.py").is_file() and (exp / "conf.lua").read_text() == CONF_LUA

    # makebatch: nine sub-experiments, {{subExpId}} is the folder name; after_makebatch writes launch.sh
    r = run_mrl("makebatch", cwd=proj)
    assert r.returncode == 0, r.stderr
    subs = [f"{i:03d}" for i in range(1, 10)]
    assert sorted(p.name for p in exp.iterdir() if p.name.isdigit()) == subs
    assert "logdir    = '../001/'," in (exp / "001" / "conf.lua").read_text()
    launch = (exp / "launch.sh").read_text()
    assert "proj=myproject_1" in launch and f"for subexp in {' '.join(subs)}; do" in launch
    assert "-conf ../${subexp}/conf.lua" in launch

    # run: the hook replaces the built-in and submits launch.sh (jbsub is not installed here)
    r = run_mrl("run", cwd=proj)
    assert r.returncode == 0, r.stderr
    assert REPLACES.format("run") in r.stderr.splitlines()
    assert r.stdout.count("luajit go.lua -conf ../") == 9

    # the training writes output.log (one float a line), which mrl_analyze.py reads
    for i, sub in enumerate(subs):
        (exp / sub / "output.log").write_text("".join(f"{0.1 * i + s}\n" for s in range(4)))

    # score: a custom command with a required -epoch and defaults from .mrl.cfg
    r = run_mrl("score", cwd=proj)
    assert r.returncode == 1 and "the following arguments are required: -epoch" in r.stderr
    (exp / "attscore").mkdir()  # the hook's own checkout of its scoring scripts
    spj_template = "lang={{langid}} mdl={{mdl}} test={{testset}} conf={{conffile}}"
    (exp / "attscore" / "test.spj.template").write_text(spj_template)
    (exp / "001" / "epoch300_swb.mdl.mat").write_text("weights")
    r = run_mrl("score", "-epoch", "300", cwd=exp)  # from inside the experiment: its `git pull` stays fenced
    assert r.returncode == 0, r.stderr
    assert "SKIP 1 subexpid 002" in r.stdout
    spj = (exp / "001" / "test_1_001_300_hub5.spj").read_text()
    assert spj == "lang=swb mdl=epoch300 test=hub5 conf=conf.lua"
    assert git(proj, "symbolic-ref", "HEAD").strip() == "refs/heads/main"

    # a sub-experiment folder made by hand, without .mrl: empty params, with a warning
    (exp / "010").mkdir()
    (exp / "010" / "output.log").write_text("5\n")
    r = run_mrl("table", "--json", cwd=proj)
    assert r.returncode == 0, r.stderr
    assert "010" in r.stderr and "no .mrl" in r.stderr
    assert [row["id"] for row in json.loads(r.stdout)] == [*subs, "010"]

    # analyze: the overview table and the per-sub-experiment plots (matplotlib)
    (exp / ".mrl.done").touch()  # marked done by hand, as the original's users did
    r = run_mrl("analyze", cwd=proj)
    assert r.returncode == 0, r.stderr
    assert "/u/tsercu/www" in r.stderr and not Path("/u/tsercu").exists()  # the original's webdir: not there
    out = exp / "analysis"
    assert all((out / f"plot_{s}.png").stat().st_size > 0 for s in [*subs, "010"])
    page = (out / "index.html").read_text()
    assert 'id="bestPerf"' in page and 'id="001"' in page and 'id="010"' in page
    assert "myproject" in page and "**" not in page.split("</h1>")[0]
    assert "plot_001.png" in page and ">5.0<" in page  # bestPerf's max of 010

    # last: the newest record, as `mrl info last`
    r = run_mrl("last", cwd=proj)
    assert r.returncode == 0 and [ln.split() for ln in r.stdout.splitlines() if "gitHash" in ln] == [
        ["gitHash", ":", head]
    ]


def test_a_template_without_mrl_lines_makes_001_for_the_originals_launch_script(original_project: Path) -> None:
    proj = original_project
    assert run_mrl("new", "one run", cwd=proj).returncode == 0
    exp = proj / "output" / "0001"
    (exp / "conf.lua").write_text("local cfg = { lr = 0.1, logdir = '../{{subExpId}}/' }\n")
    r = run_mrl("makebatch", cwd=proj)
    assert r.returncode == 0, r.stderr
    assert (exp / "001" / "conf.lua").read_text() == "local cfg = { lr = 0.1, logdir = '../001/' }\n"
    assert (exp / "001" / ".mrl").is_file() and not (exp / ".mrl.template").exists()
    assert "for subexp in 001; do" in (exp / "launch.sh").read_text()  # after_makebatch's loop
    r = run_mrl("run", cwd=proj)
    assert r.returncode == 0 and r.stdout.count("-conf ../001/conf.lua") == 1


# -- `mrl last` was `mrl info last`: info's hooks apply to it ---------------------------------
def test_info_hooks_wrap_mrl_last_with_mode_info_as_in_the_original(project: Path) -> None:
    hooks(
        project,
        "def before_info(self, args):\n    print('before', args.mode, args.expId)\n"
        "def after_info(self, args):\n    print('after', args.mode)\n",
        {"before_info": {}, "after_info": {}},
    )
    assert main(["new", "first"]) == 0
    r = run_mrl("last", cwd=project)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "before info 1" and lines[-1] == "after info"
    assert any(line.startswith("gitHash") for line in lines)


def test_a_hook_named_info_replaces_mrl_last_too(project: Path) -> None:
    hooks(project, "def info(self, args):\n    print('my info of', args.expId)\n", {"info": {}})
    assert main(["new", "first"]) == 0
    r = run_mrl("last", cwd=project)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "my info of 1\n"
    assert REPLACES.format("info") in r.stderr


# -- experiments the original made: a `-sloppy` gitHash, subExpId among the params -------------
def _original_experiment(project: Path, exp_id: int, sha: str, lrs: list[float]) -> Path:
    """An experiment folder as the original's `mrl new -nc` + `mrl makebatch` wrote it."""
    exp = project / "output" / f"{exp_id:04d}"
    exp.mkdir(parents=True)
    record = {
        "expId": exp_id,
        "basedir": str(project),
        "gitFailUntracked": "no",
        "gitHash": sha + "-sloppy",
        "gitDescription": "init",
        "timestamp": "2016-10-07T12:00:00",
        "user": "tom",
        "description": "old",
    }
    (exp / ".mrl").write_text(json.dumps(record, indent=2))
    (exp / "conf.lua").write_text("lr = {{lr}}\n-- MRL:grid['lr'] = [0.1]\n")
    for i, lr in enumerate(lrs, start=1):
        sub = exp / f"{i:03d}"
        sub.mkdir()
        (sub / ".mrl").write_text(json.dumps({"params": {"lr": lr, "subExpId": f"{i:03d}"}}, indent=2))
        (sub / "metrics.json").write_text(json.dumps({"loss": lr * 2}))
    return exp


def test_an_original_sloppy_experiment_is_compared_and_reproduced_at_its_commit(project: Path) -> None:
    sha = git(project, "rev-parse", "HEAD").strip()
    (project / "train.py").write_text("print('v2')\n")
    later = commit_all(project, "v2")
    _original_experiment(project, 1, sha, [0.1, 0.01])
    _original_experiment(project, 2, later, [0.1, 0.01, 0.001])
    diff = run_mrl("diff", "1", "2", cwd=project)
    assert diff.returncode == 0, diff.stderr
    assert f"code: {sha[:12]} -> {later[:12]}, 1 file(s) changed" in diff.stdout, diff.stdout
    assert "subExpId" not in diff.stdout  # the original's bookkeeping, not a param that differs
    table = run_mrl("table", "1", cwd=project)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["id", "lr", "state", "duration", "loss"]
    repro = run_mrl("reproduce", "1", cwd=project)
    assert repro.returncode == 0, repro.stderr
    assert "kept no diff of the changes: the new experiment has its commit alone" in repro.stderr
    made = json.loads((project / "output" / "0003" / ".mrl").read_text())
    assert made["gitHash"] == sha and made["reproduces"]["expId"] == 1
    assert json.loads((project / "output" / "0003" / "001" / ".mrl").read_text())["params"] == {"lr": 0.1}


def test_hook_files_importing_the_originals_helper_modules_still_load(project: Path) -> None:
    """`from metarunlog.util import nowstring` / `from metarunlog.exceptions import ...` in an
    original hook file failed to import, which stopped every command that runs a hook."""
    hooks(
        project,
        """
import re
from metarunlog.exceptions import *
from metarunlog.util import nowstring, get_commit, sshify, _decode_dict

def peek(self, args):
    try:
        self._resolveExpId('99')
    except InvalidExpIdException as e:
        caught = 'caught'
    sha, subject = get_commit()
    assert re.fullmatch(r'\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d', nowstring()), nowstring()
    assert re.fullmatch(r'\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d', nowstring(sec=False))
    print(caught, subject, sshify("echo 'a b'", 'node7', None), _decode_dict({'a': 1}))
    raise BatchException('the batch is not ready')
""",
        {"peek": {}},
    )
    assert main(["new"]) == 0
    r = run_mrl("peek", cwd=project)
    lines = r.stdout.splitlines()
    assert lines == ["caught hooks ssh node7 'echo '\"'\"'a b'\"'\"'' {'a': 1}"], r.stdout + r.stderr
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1].startswith("mrl: error: hook peek raised BatchError: the batch is not ready")


def test_the_originals_abbreviated_git_hash_is_the_same_commit_as_the_full_one(project: Path) -> None:
    """The original recorded `git log -n1 --oneline`'s short hash: `mrl diff` of it and an
    experiment mrl made at that commit said "cc01c33 -> cc01c333ecec, 0 file(s) changed"."""
    assert main(["new", "-cp", "no"]) == 0
    sha = git(project, "rev-parse", "HEAD").strip()
    _original_experiment(project, 2, sha, [0.1])
    rec = json.loads((project / "output" / "0002" / ".mrl").read_text())
    rec["gitHash"] = sha[:7]
    (project / "output" / "0002" / ".mrl").write_text(json.dumps(rec))
    diff = run_mrl("diff", "1", "2", cwd=project)
    assert diff.returncode == 0, diff.stderr
    assert f"code: same commit {sha[:12]}" in diff.stdout, diff.stdout


def test_self_basedir_and_outdir_answer_strs_methods_as_the_originals_strs_did(project: Path) -> None:
    """The original's `self.basedir`/`self.outdir` were strs: `.endswith`, `.split`, slicing,
    `in` and `len` raised AttributeError/TypeError on mrl's Paths."""
    hooks(
        project,
        """
import json
def after_new(self, args):
    out = self.outdir
    got = [out.endswith('/output'), out.split('/')[-1], out[-6:], 'output' in out, len(out) == len(str(out)),
           self.basedir.rstrip('/') == str(self.basedir), 'cd ' + out == 'cd ' + str(out), (out / 'x').name]
    open(self.basedir + '/api.json', 'w').write(json.dumps(got))
""",
        {"after_new": {}},
    )
    assert main(["new"]) == 0
    assert json.loads((project / "api.json").read_text()) == [True, "output", "output", True, True, True, True, "x"]
