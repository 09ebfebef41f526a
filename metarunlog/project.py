"""Project: the basedir (the folder holding .mrl.cfg, anywhere inside a git work tree),
its outdir, experiment ids, `last`.

A Project is also the object hooks receive as `mrl` (or `self` in hook files written for
the original metarunlog): see the public methods below and docs/hooks.md.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path, PosixPath
from typing import Any

from metarunlog import config as config_mod
from metarunlog.config import CFG_NAME, Config
from metarunlog.errors import ConfigError, NotAnExperiment
from metarunlog.experiment import DONE_MARK, RECORD, Experiment, SubExperiment, is_id, parse_id

LAST = "last"


def find_basedir(start: Path) -> Path | None:
    """The nearest folder at or above `start` holding a project `.mrl.cfg`, inside a git
    work tree (its top-level or any subfolder: a monorepo's `repo/projA/.mrl.cfg`).

    Folders inside an experiment are skipped: an experiment's own `.mrl.cfg` (overrides)
    and the copies of the project's `.mrl.cfg` inside its `code/` snapshot, so commands
    run from inside an experiment still find the project.

    Symlinks: `start` is walked up as given (`proj/last/001`, where `last` and `proj/output`
    may be links to `/scratch/...`), then as resolved; when neither reaches the project
    (an experiment on scratch, reached by its real path, as a Slurm task is), the
    experiment's own record names its project (`basedir` in EXPDIR/.mrl).
    """
    start = Path(os.path.abspath(start))
    for path in dict.fromkeys((start, start.resolve())):
        found = _walk_up(path)
        if found is not None:
            return found
    return _from_experiment_record(start.resolve())


def _walk_up(start: Path) -> Path | None:
    for d in (start, *start.parents):
        if (d / CFG_NAME).is_file() and not inside_experiment(d) and _in_git_work_tree(d):
            return d
    return None


def _cfg_not_a_file(start: Path) -> Path | None:
    """The nearest `.mrl.cfg` at or above `start` that is there but no file (a folder, a
    FIFO, a dangling link): why no project was found, when that is why."""
    for d in (start, *start.parents):
        path = d / CFG_NAME
        if os.path.lexists(path) and not path.is_file() and not inside_experiment(d):
            return path
    return None


def _kind(path: Path) -> str:
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "a link to nothing" if os.path.islink(path) else "unreadable"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    return "a socket" if stat.S_ISSOCK(mode) else "a device"


def _from_experiment_record(path: Path) -> Path | None:
    """The project an experiment at or above `path` was made in, from its `.mrl` record."""
    from metarunlog import jsonio

    for d in (path, *path.parents):
        if not (d / RECORD).is_file():
            continue
        data = jsonio.read_json_or(d / RECORD, None)
        base = data.get("basedir") if isinstance(data, dict) else None
        if isinstance(base, str) and base:
            found = _walk_up(Path(base))
            return found if found == Path(os.path.abspath(base)) else None
    return None


def _experiment_of_a_project_not_here(path: Path) -> tuple[Path, str] | None:
    """The experiment folder at or above `path` and the project its record names, when no
    project was found from there (a copy rsynced to another machine): why, when that is why."""
    from metarunlog import jsonio

    for d in (path, *path.parents):
        if (d / RECORD).is_file():
            data = jsonio.read_json_or(d / RECORD, None)
            if isinstance(data, dict) and "subExpId" in data and "expId" not in data:
                continue  # a sub-experiment's record: its experiment's is further up
            base = data.get("basedir") if isinstance(data, dict) else None
            return (d, base) if isinstance(base, str) and base else None
    return None


def logical_cwd() -> Path:
    """The current directory as the shell names it (`$PWD`, symlinks kept), when that is
    where we are; else the real path."""
    cwd = Path.cwd()
    pwd = os.environ.get("PWD")
    if pwd and os.path.isabs(pwd):
        try:
            if os.path.samefile(pwd, cwd):
                return Path(pwd)
        except OSError:
            pass
    return cwd


def inside_experiment(d: Path) -> bool:
    return any((p / RECORD).is_file() for p in (d, *d.parents))


def _in_git_work_tree(d: Path) -> bool:
    return any((p / ".git").exists() for p in (d, *d.parents))


class LegacyPath(PosixPath):
    """A Path that also concatenates like a str: hook files written for the original
    metarunlog build paths as `self.outdir + '/x'` (its basedir and outdir were strs)."""

    def __add__(self, other: str) -> str:
        return str(self) + other

    def __radd__(self, other: str) -> str:
        return other + str(self)

    # The rest of what those files did with a str path (`self.outdir.endswith('/')`,
    # `.split('/')`, `self.basedir[-1]`, `'proj' in self.basedir`, `len(...)`): str's
    # public methods that Path lacks answer as on the str, so `.replace` stays Path's.
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or not hasattr(str, name):
            raise AttributeError(name)
        return getattr(str(self), name)

    def __len__(self) -> int:
        return len(str(self))

    def __getitem__(self, index: Any) -> str:
        return str(self)[index]

    def __contains__(self, part: str) -> bool:
        return part in str(self)


class Project:
    """An initialised project. Hooks get one of these.

    Public attributes: `basedir`, `outdir` (Paths), `cfg` (the loaded config, readable as
    `cfg["key"]` or `cfg.key`). Public methods: `experiments()`, `load_exp(ref)`,
    `sub_experiments(exp)`, `last_id()`.
    """

    def __init__(self, basedir: Path, cfg: Config | None = None) -> None:
        self.basedir = LegacyPath(basedir)
        self.cfg = cfg if cfg is not None else config_mod.load(basedir)
        self.outdir = LegacyPath((basedir / self.cfg["outdir"]).resolve())
        self.args: Any = None  # the parsed command line, set by main() for hooks

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        start = Path(os.path.abspath(start)) if start is not None else logical_cwd()
        basedir = find_basedir(start)
        if basedir is None:
            odd = _cfg_not_a_file(start)
            if odd is not None:
                raise ConfigError(
                    f"{odd} is {_kind(odd)}, not a file: mrl reads the project's settings from a "
                    "plain file there; remove it, or replace it with a file (`mrl init` writes one)"
                )
            away = _experiment_of_a_project_not_here(start)
            if away is not None:
                exp, base = away
                raise ConfigError(
                    f"{exp} is an experiment folder of the project at {base} (its {RECORD} says), which "
                    "is not here (a copy?): run mrl where that project is (`mrl verify` needs its git "
                    "repository, which holds the commit); code/ runs without mrl"
                )
            raise ConfigError(
                f"no .mrl.cfg in {start} or any parent: run `mrl init` in your project's "
                "folder (a git repository or a folder inside one) first"
            )
        return cls(basedir)

    # -- experiments ---------------------------------------------------------------
    def exp_name(self, exp_id: int) -> str:
        return str(self.cfg["singleExpFormat"].format(expId=exp_id))

    def experiment_ids(self) -> list[int]:
        """Ids of the experiment folders in outdir, ascending (records not read)."""
        fmt = self.cfg["singleExpFormat"]
        ids = []
        try:
            names = os.listdir(self.outdir)
        except FileNotFoundError:
            raise ConfigError(
                f"the output directory {self.outdir} does not exist: create it, or fix "
                f"'outdir' in {self.basedir / CFG_NAME}"
            ) from None
        for name in names:
            n = parse_id(name, fmt, "expId")
            if n is not None:
                ids.append(n)
        return sorted(ids)

    def experiment(self, exp_id: int) -> Experiment:
        name = self.exp_name(exp_id)
        return Experiment(exp_id, name, self.outdir / name, self.cfg)

    def experiments(self) -> list[Experiment]:
        """All experiments, oldest first. Records are read lazily (`exp.record`)."""
        return [self.experiment(i) for i in self.experiment_ids()]

    def last_id(self) -> int | None:
        ids = self.experiment_ids()
        return ids[-1] if ids else None

    def load_exp(self, ref: str | int | None = None) -> Experiment:
        """The experiment named by `ref`: an id (`3`, `0003`), `last`, or a path.

        With no ref: the experiment the current directory is in, else the newest one.
        """
        exp = self._resolve(ref)
        if not (exp.dir / RECORD).is_file():
            from metarunlog.making import unmade

            raise NotAnExperiment(f"{exp.dir} has no {RECORD} record: {unmade(exp.dir).why}")
        return exp

    def refuse_empty(self, ref: str | int | None) -> None:
        """An empty ref (`mrl status "$EXP"` with EXP unset) is an error, never `Path('')`,
        the current folder: that would act on the experiment the user happens to be in."""
        if ref == "":
            raise NotAnExperiment(self._not_an_experiment("", None))

    def _resolve(self, ref: str | int | None) -> Experiment:
        self.refuse_empty(ref)
        if ref is None:
            here = self.experiment_here(Path.cwd())
            if here is not None:
                return here
            ref = LAST
        if isinstance(ref, int) or (isinstance(ref, str) and is_id(ref)):
            exp_id = int(ref)
            if exp_id not in self.experiment_ids():
                raise NotAnExperiment(f"no experiment {ref} in {self.outdir}: see `mrl ls`")
            return self.experiment(exp_id)
        if ref == LAST:
            last = self.last_id()
            if last is None:
                raise NotAnExperiment("no experiment yet: make one with `mrl new`")
            return self.experiment(last)
        found = self.experiment_containing(Path(ref))
        if found is None or found.dir != Path(ref).resolve():
            copy = self.copy_containing(Path(ref)) if found is None else None
            raise NotAnExperiment(self._a_copy(copy) if copy else self._not_an_experiment(ref, found))
        return found

    def _not_an_experiment(self, ref: str, containing: Experiment | None) -> str:
        """Why `ref` names no experiment; `2/3` or a sub-experiment folder: what takes it."""
        from metarunlog.selection import _EXP_SLASH_SEL, split_sub_ref

        sub_ref = split_sub_ref(ref.rstrip("/"))
        shaped = _EXP_SLASH_SEL.match(ref.rstrip("/"))
        named = shaped is not None and (shaped.group(1) == LAST or int(shaped.group(1)) in self.experiment_ids())
        if shaped and named and not sub_ref and not Path(ref).exists():  # `2/1,x`: EXP/SELECTION, a bad selection
            return (
                f"'{ref}': bad selection {shaped.group(2)!r} of experiment {shaped.group(1)}: use 'all', an id "
                "like 3, or a list like 1,4-6 (EXP/SELECTION: `2/1-4,7`)"
            )
        in_one = containing is not None and Path(ref).resolve().parent == containing.dir
        if sub_ref or (in_one and (Path(ref) / RECORD).is_file()):  # a sub-experiment folder
            if not sub_ref:
                exp = str(containing.id if containing else "")
            else:
                exp = str(self.last_id()) if sub_ref[0] == LAST else sub_ref[0]
            return (
                f"'{ref}' names sub-experiments of experiment {exp}, and this command takes an experiment: "
                f"give {exp} (`mrl table`, `mrl info`, `mrl status`, `mrl run` and `mrl diff` take EXP/SUB)"
            )
        return (
            f"'{ref}' is not an experiment: give an id (see `mrl ls`), 'last', or the path of a folder in {self.outdir}"
        )

    def experiment_here(self, cwd: Path) -> Experiment | None:
        """The experiment `cwd` is in, None outside any. A folder of an experiment outside
        the outdir (a copy, an rsync elsewhere) is an error: defaulting to the newest one
        would act on another experiment than the one the user is in."""
        here = self.experiment_containing(cwd)
        if here is not None:
            return here
        copy = self.copy_containing(cwd)
        if copy is not None:
            raise NotAnExperiment(self._a_copy(copy))
        return None

    def _a_copy(self, copy: Experiment) -> str:
        """Why an experiment folder outside the outdir is not acted on (the current folder, or
        a path given to a command or to the API)."""
        return (
            f"{copy.dir} is an experiment folder outside {self.outdir}, the outdir of the project at "
            f"{self.basedir} (a copy?): mrl acts on the experiments in {self.outdir}; name one (`mrl ls`), "
            "or check the copy's code/ with `mrl verify`"
        )

    def copy_containing(self, path: Path) -> Experiment | None:
        """The experiment folder outside the outdir (a copy of one: `cp -a`, rsync) that
        `path` is in, as an Experiment over that folder; None if `path` is in none."""
        path = path.resolve()
        if self.experiment_containing(path) is not None:
            return None
        top = next((d for d in reversed((path, *path.parents)) if (d / RECORD).is_file()), None)
        if top is None:
            return None
        n = parse_id(top.name, self.cfg["singleExpFormat"], "expId")
        return Experiment(0 if n is None else n, top.name, top, self.cfg)

    def experiment_containing(self, path: Path) -> Experiment | None:
        """The experiment of the outdir that `path` is in (or is), by its folder's name;
        None outside any (its record is not read: `load_exp` checks it)."""
        try:
            rel = path.resolve().relative_to(self.outdir)
        except ValueError:
            return None
        if not rel.parts:
            return None
        n = parse_id(rel.parts[0], self.cfg["singleExpFormat"], "expId")
        return None if n is None else self.experiment(n)

    def sub_experiments(self, exp: Experiment | str | int | None = None) -> list[SubExperiment]:
        if not isinstance(exp, Experiment):
            exp = self.load_exp(exp)
        return exp.sub_experiments()

    def update_last_link(self, exp: Experiment) -> str | None:
        """Point `basedir/last` at `exp`, atomically (symlink to a temp name, then rename).

        A `last` that is not a symlink (a file or folder of the user's) is never replaced:
        returns the warning saying so (None when the link was set)."""
        from metarunlog.locks import waiting_lock

        link = self.basedir / LAST
        if link.exists() and not link.is_symlink():
            kind = "folder" if link.is_dir() else "file"
            return (
                f"{link} is a {kind} of yours, not mrl's link to the newest experiment: left as it is "
                f"(rename it to get the `{LAST}` link back)"
            )
        # Concurrent `mrl new`s: the check and the move happen under one lock, or an older
        # experiment's process could move `last` back after a newer one set it.
        with waiting_lock(self.outdir / ".mrl.last.lock"):
            current = self._last_link_target_id()
            if current is not None and current > exp.id and (self.outdir / self.exp_name(current)).exists():
                return None  # a concurrent `mrl new` made a newer one
            tmp = self.basedir / f".{LAST}.{os.getpid()}.tmp"
            target = os.path.relpath(exp.dir, self.basedir)
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            os.symlink(target, tmp)
            try:
                os.replace(tmp, link)
            finally:
                if tmp.is_symlink():  # the rename failed: leave nothing behind
                    tmp.unlink()
        return None

    def _last_link_target_id(self) -> int | None:
        link = self.basedir / LAST
        if not link.is_symlink():
            return None
        exp = self.experiment_containing(self.basedir / os.readlink(link))
        return exp.id if exp else None

    # -- names kept for hook files written for the original metarunlog -----------------
    # Thin shims with the original's names and return types (strs, ints, dicts); new
    # hooks should use the public methods above. See docs/hooks.md.
    @property
    def lastExpId(self) -> int | None:  # noqa: N802
        return self.last_id()

    @property
    def expList(self) -> list[int]:  # noqa: N802
        return self.experiment_ids()

    @property
    def expDirList(self) -> list[str]:  # noqa: N802
        return [self.exp_name(i) for i in self.experiment_ids()]

    def _fmtSingleExp(self, expId: int) -> str:  # noqa: N802,N803
        return self.exp_name(int(expId))

    def _fmtSubExp(self, subExpId: int) -> str:  # noqa: N802,N803
        return str(self.cfg["subExpFormat"].format(subExpId=int(subExpId), expId=self.last_id() or 0))

    def _checkValidExp(self, name: str) -> bool:  # noqa: N802
        return name in self.expDirList

    def _resolveExpId(self, expId: Any) -> int:  # noqa: N802,N803
        """Original API: the int id for an int, a digit string, 'last' or a path."""
        return self.load_exp(None if expId is None else str(expId)).id

    def _getExpDir(self, expId: Any, new: bool = False) -> str:  # noqa: N802,N803
        if new:
            return str(self.outdir / self.exp_name(int(expId)))
        return str(self.load_exp(str(expId)).dir)

    def _getExpConf(self, expId: Any) -> OrderedDict[str, Any]:  # noqa: N802,N803
        """Original API: the experiment's `.mrl` record, in file order."""
        return _exp_conf(self.load_exp(str(expId)))

    def _loadExp(self, expId: Any = None) -> tuple[int, str, OrderedDict[str, Any]]:  # noqa: N802,N803
        """Original API: `(expId, expDir, expConfig)` for an id, 'last' or a path; like the
        original, the experiment's own .mrl.cfg overrides then show in `metarunlog.cfg`."""
        from metarunlog import cfg as legacy_cfg

        exp = self.load_exp(None if expId is None else str(expId))
        legacy_cfg._fill(exp.cfg)
        return exp.id, str(exp.dir), _exp_conf(exp)

    def _getSubExperiments(self, expDir: Any) -> list[str]:  # noqa: N802,N803
        """Original API: the sub-experiment folder names of `expDir`, sorted."""
        exp = self.load_exp(str(expDir))
        return [s.name for s in exp.sub_experiments() if s.name != "."]

    def _loadSubExp(self, subExpDir: Any) -> dict[str, Any]:  # noqa: N802,N803
        """Original API: a sub-experiment's `.mrl` record; empty params when it has none
        (a folder made by hand), as the original's last commit did."""
        from metarunlog import jsonio

        data = jsonio.read_json_or(Path(subExpDir) / RECORD, None)
        if not isinstance(data, dict):
            return {"subExpDir": str(subExpDir), "params": {}}
        params = data.get("params")
        if isinstance(params, dict):
            # The original stored the folder name in every params dict (`params['subExpId']`,
            # '001'); mrl keeps it out of params, so old hooks that read it get it here.
            data["params"] = {**params, "subExpId": params.get("subExpId", Path(subExpDir).name)}
        return data

    def _expIsDone(self, expDir: Any) -> bool:  # noqa: N802,N803
        return (Path(expDir) / DONE_MARK).exists()

    def _expIsDoneIndicator(self, expDir: Any) -> str:  # noqa: N802,N803
        return "   " if self._expIsDone(expDir) else "** "

    def _relpathUser(self, path: Any) -> str:  # noqa: N802
        return "~/" + os.path.relpath(path, os.path.expanduser("~"))

    def _getRunLocations(  # noqa: N802
        self,
        expId: Any,
        subExpId: Any,
        expConfig: Any = None,
        relativeTo: Any = "",  # noqa: N803
    ) -> list[str]:
        """Original API: the sub-experiment folders to run (`'all'`, or one number), absolute,
        or relative to `relativeTo` (their names when it is the experiment folder)."""
        exp_dir = self._getExpDir(expId)
        subs = self._getSubExperiments(exp_dir)
        if not subs:
            locs = [""]
        elif str(subExpId) == "all":
            locs = subs
        elif str(subExpId).isdigit() and self._fmtSubExp(int(subExpId)) in subs:
            locs = [self._fmtSubExp(int(subExpId))]
        else:
            raise NotAnExperiment(f"subExpId {subExpId} is not one of {exp_dir}'s {len(subs)} sub-experiments")
        if str(relativeTo) == exp_dir:
            return locs
        paths = [os.path.join(exp_dir, loc) for loc in locs]
        return [os.path.relpath(p, relativeTo) for p in paths] if relativeTo else paths

    def _getCmdParams(self, expConfig: Any, args: Any, relloc: str) -> dict[str, Any]:  # noqa: N802,N803
        """Original API: the values a job's command was rendered with: the outdir and basedir,
        the experiment's record, the config's keys, the options given, `relloc`/`absloc`."""
        from metarunlog import cfg as legacy_cfg

        params: dict[str, Any] = {"mrlOutdir": str(self.outdir), "mrlBasedir": str(self.basedir)}
        params.update(expConfig or {})
        params.update({k: getattr(legacy_cfg, k, v) for k, v in self.cfg.items() if "_" not in k})
        params.update({k: v for k, v in vars(args).items() if v} if args is not None else {})
        params.update({"relloc": relloc, "absloc": os.path.join(str(self.outdir), relloc)})
        return params

    def _copyConfigFrom(self, src: Any, dst: Any) -> None:  # noqa: N802
        """Original API: copy the config's `copyFiles` from folder `src` to folder `dst`."""
        import shutil

        for name in self.cfg["copyFiles"] or []:
            shutil.copy(os.path.join(src, name), os.path.join(dst, name))


def _exp_conf(exp: Experiment) -> OrderedDict[str, Any]:
    """The `.mrl` record as the original gave it to hooks: a plain (mutable, JSON-dumpable)
    OrderedDict in file order, read from the file."""
    from metarunlog import jsonio

    return OrderedDict(jsonio.read_json(exp.dir / RECORD))
