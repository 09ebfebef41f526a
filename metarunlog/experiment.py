"""Experiment and SubExperiment: folders on disk and their JSON records.

An experiment is `OUTDIR/<singleExpFormat>` with a `.mrl` record; a sub-experiment is
`EXPDIR/<subExpFormat>` with its own `.mrl` (params, subExpId) and, once it ran, a
`.mrl.status`. A template without MRL lines makes one sub-experiment 001/ (as the
original did); a one-job experiment made by an earlier mrl 2.0 says
`"batch": {"single": true, ...}` in its record and the experiment folder itself is its
only sub-experiment (name "."), still read.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metarunlog import jsonio
from metarunlog.config import Config
from metarunlog.errors import CorruptRecord

if TYPE_CHECKING:  # imported where used: `mrl ls` reads thousands of records as plain JSON
    from metarunlog.records import ExperimentRecord, Status, SubRecord

log = logging.getLogger("metarunlog.experiment")  # `mrl` prints these as `mrl: warning: ...`

RECORD = ".mrl"
STATUS = ".mrl.status"
DONE_MARK = ".mrl.done"
DIFF = ".mrl.diff"
LOG = "run.log"
CODE = "code"
TRASH = ".trash"
ATTEMPTS = ".mrl.attempts"  # SUBDIR/.mrl.attempts/<N>/: the metrics files attempt N left (execute)
TEMPLATE_DIR = ".mrl.template"  # where a one-job experiment keeps its templates (makebatch, new -cp)
BATCH_JOURNAL = ".mrl.batch-journal"  # the renames a makebatch is making (see write_batch_journal)


@functools.lru_cache(maxsize=32)
def format_regex(fmt: str, field_name: str) -> re.Pattern[str]:
    """A regex matching names made by `fmt.format(field=int)`; group 1 is the number."""
    out, pos = [], 0
    for m in re.finditer(r"\{(\w+)(?::[^}]*)?\}", fmt):
        out.append(re.escape(fmt[pos : m.start()]))
        out.append(r"(\d+)" if m.group(1) == field_name else r"\d+")
        pos = m.end()
    out.append(re.escape(fmt[pos:]))
    return re.compile("^" + "".join(out) + "$")


def is_id(text: str) -> bool:
    """True for an id as typed: ASCII digits only ('²'.isdigit() is True but int() refuses it,
    and int() would read Arabic-Indic or full-width digits, which no id is written in)."""
    return text.isascii() and text.isdigit()


def parse_id(name: str, fmt: str, field_name: str, **extra: int) -> int | None:
    """The id that `fmt` turned into `name`, or None when `name` is not such a name."""
    m = format_regex(fmt, field_name).match(name)
    if not m:
        return None
    n = int(m.group(1))
    return n if fmt.format(**{field_name: n, **extra}) == name else None


def _read_or_none(path: Path, *, missing_only: bool = False, limit: int | None = None) -> bytes | None:
    """The file's bytes; None when it cannot be read, or is over `limit` bytes
    (`missing_only`: only when it does not exist; else the error is raised)."""
    try:
        return jsonio.read_bytes(path, limit)
    except FileNotFoundError:
        return None
    except (OSError, CorruptRecord):
        if missing_only:
            raise
        return None


@dataclass
class SubExperiment:
    """One combination of params: a folder with `.mrl`, the rendered files, and results."""

    exp: Experiment
    id: int
    name: str  # folder name, e.g. "001"; "." for the one job of a single experiment
    dir: Path
    # `.mrl` as `record` read it, and (the rendered files, the digest) of `fingerprint()`
    _record_bytes: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _planned: tuple[tuple[tuple[str, bytes | None], ...], str] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @cached_property
    def record(self) -> SubRecord:
        """`SUBDIR/.mrl` (for a one-job experiment: the params its batch block holds)."""
        from metarunlog.records import SubRecord

        if self.name == ".":
            batch = self.exp.record.batch
            return SubRecord(self.id, dict(batch.params or {}) if batch else {})
        raw = _read_or_none(self.dir / RECORD, missing_only=True, limit=jsonio.RECORD_MAX)
        if raw is None:  # a folder made by hand: empty params, as the original's last commit
            log.warning(f"sub-experiment folder {self.dir} has no {RECORD} (made by hand?): its params are empty")
            return SubRecord(self.id, {})
        data = jsonio.parse_json(raw, self.dir / RECORD)
        self._record_bytes = raw  # what `fingerprint(fresh=True)` compares first
        return SubRecord.from_json(data if isinstance(data, dict) else {})

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.record.params)

    @property
    def own_params(self) -> dict[str, Any]:
        """The params without `subExpId`, which the original metarunlog kept among them (the
        folder name; a reserved name here, so never a param of a batch mrl made)."""
        return {k: v for k, v in self.record.params.items() if k != "subExpId"}

    def fingerprint(self, *, fresh: bool = False) -> str:
        """`records.fingerprint` of this sub-experiment: the params this object read (the
        ones its command was rendered from), or with `fresh` the params on disk now, and
        the files makebatch rendered into its folder as they are now."""
        from metarunlog.records import fingerprint

        batch = self.exp.record.batch
        files = tuple((n, _read_or_none(self.dir / n)) for n in (batch.templates if batch is not None else []))
        if not fresh:
            digest = fingerprint(self.record.params, files)
            self._planned = (files, digest)
            return digest
        # Under a runner's lock, once per job: the very bytes it was planned from are the
        # same params (no parse, no hash).
        planned = self._planned
        if (
            planned
            and self._record_bytes is not None
            and planned[0] == files
            and _read_or_none(self.dir / RECORD, limit=jsonio.RECORD_MAX) == self._record_bytes
        ):
            return planned[1]
        return fingerprint(self._params_on_disk(), files)

    def _params_on_disk(self) -> dict[str, Any] | None:
        """Read as `record` reads them; None when the folder (or its record) is gone."""
        from metarunlog.records import ExperimentRecord, SubRecord

        if self.name == ".":
            data = jsonio.read_json_or(self.exp.dir / RECORD, None)
            batch = ExperimentRecord.from_json(data).batch if isinstance(data, dict) else None
            return dict(batch.params or {}) if batch is not None else None
        data = jsonio.read_json_or(self.dir / RECORD, None)
        if data is None:
            return {} if self.dir.is_dir() else None  # a folder made by hand has empty params
        return SubRecord.from_json(data if isinstance(data, dict) else {}).params

    # cached: a runner uses each several times per job, and a Path join is not free
    @cached_property
    def status_path(self) -> Path:
        return self.dir / STATUS

    @cached_property
    def log_path(self) -> Path:
        return self.dir / LOG

    def read_status(self) -> Status | None:
        """`.mrl.status`, or None when it never ran (pending)."""
        from metarunlog.records import Status

        data = jsonio.read_json_or(self.status_path, None)
        return Status.from_json(data) if isinstance(data, dict) else None

    def write_status(self, status: Status, *, durable: bool = True) -> None:
        jsonio.write_json(self.status_path, status.to_json(), durable=durable)

    def prepare_status(self, status: Status) -> jsonio.Pending:
        """`write_status` up to its temp file: it is the record once `commit()`-ed."""
        return jsonio.prepare_json(self.status_path, status.to_json())


@dataclass
class Experiment:
    """An experiment folder: its `.mrl` record, config (with overrides), and sub-experiments."""

    id: int
    name: str  # folder name, e.g. "0002"
    dir: Path
    base_cfg: Config = field(repr=False)

    @cached_property
    def record(self) -> ExperimentRecord:
        """`EXPDIR/.mrl` (also a mapping over its JSON keys: `exp.record["gitHash"]`)."""
        from metarunlog.records import ExperimentRecord

        data = jsonio.read_json(self.dir / RECORD)
        if not isinstance(data, dict):
            raise CorruptRecord(f"corrupt record {self.dir / RECORD}: not a JSON object")
        return ExperimentRecord.from_json(data)

    @cached_property
    def cfg(self) -> Config:
        """The project's config, with this experiment's pinned `run` block (see
        `pinned_run`) in place of the project's, then `EXPDIR/.mrl.cfg` over both."""
        from metarunlog.config import load_experiment_overrides, with_pinned_run

        return load_experiment_overrides(with_pinned_run(self.base_cfg, self.pinned_run, self.dir / RECORD), self.dir)

    @property
    def pinned_run(self) -> dict[str, Any]:
        """The `run` block `mrl new` pinned in `.mrl` ({} for an experiment made before mrl
        pinned it, or one whose record cannot be read: the project's block applies)."""
        from metarunlog.errors import MrlError

        try:
            return dict(self.record.run)
        except (MrlError, OSError):
            return {}

    @property
    def code_dir(self) -> Path:
        """The project's folder in the code snapshot: code/ itself, or code/<sub> for a
        project in a subfolder of its repository (record key `codeSubdir`)."""
        return self.dir / CODE / (self.record.code_subdir or "")

    @property
    def note_path(self) -> Path:
        return self.dir / self.cfg["note_fn"]

    @property
    def is_done(self) -> bool:
        return (self.dir / DONE_MARK).exists()

    @property
    def is_single(self) -> bool:
        return self.record.batch is not None and self.record.batch.single

    @property
    def is_expanded(self) -> bool:
        return self.record.batch is not None

    def subexp_dir(self, sub_id: int) -> Path:
        return self.dir / self.cfg["subExpFormat"].format(subExpId=sub_id, expId=self.id)

    def sub_experiments(self) -> list[SubExperiment]:
        """Sub-experiments sorted by id (the experiment itself for a one-job experiment)."""
        if self.is_expanded and self.is_single:
            return [SubExperiment(self, 1, ".", self.dir)]
        fmt = self.cfg["subExpFormat"]
        subs = []
        with os.scandir(self.dir) as it:
            for entry in it:
                n = parse_id(entry.name, fmt, "subExpId", expId=self.id)
                if n is not None and entry.is_dir():
                    subs.append(SubExperiment(self, n, entry.name, Path(entry.path)))
        subs.sort(key=lambda s: s.id)
        if self.batch_interrupted and not self.__dict__.get("_warned_journal"):
            self.__dict__["_warned_journal"] = True  # once per command, however often it lists
            log.warning(
                f"{self.dir}: an mrl makebatch was killed while it put its sub-experiments in place "
                f"(they are part old, part new); `mrl run` or `mrl makebatch` on it finishes that first"
            )
        return subs

    @property
    def batch_interrupted(self) -> bool:
        """A makebatch was killed while it put its sub-experiments in place (its journal is
        still there): the folders are part old, part new until the next batch lock finishes it."""
        return os.path.lexists(self.dir / BATCH_JOURNAL)

    def forget_record(self) -> None:
        """Read `.mrl` (and the config it pins) again next time: another writer replaced it."""
        for cached in ("record", "cfg", "_warned_journal"):
            self.__dict__.pop(cached, None)

    def write_record(self, record: ExperimentRecord) -> None:
        jsonio.write_json(self.dir / RECORD, record.to_json())
        self.__dict__["record"] = record
        self.__dict__.pop("cfg", None)  # it depends on the record's pinned run block

    def template_params(self) -> dict[str, Any]:
        """Variables every template and run command sees, besides the params."""
        return {"expId": self.id, "expDir": str(self.dir), "codeDir": str(self.code_dir)}


# -- a makebatch's renames, made whole after a crash ---------------------------------------


def write_batch_journal(exp_dir: Path, moves: list[tuple[Path, Path]], record: dict[str, Any], tmp: Path) -> None:
    """Before a makebatch renames anything: the renames it will make (in order) and the record
    it will write, durable, so that a makebatch killed half-way (kill -9, SIGTERM) is finished
    by the next one to take the batch lock rather than leaving half the old batch in .trash.
    `tmp` is the makebatch's own temp folder, removed once the renames are made."""
    rel = [[os.path.relpath(src, exp_dir), os.path.relpath(dst, exp_dir)] for src, dst in moves]
    jsonio.write_json(exp_dir / BATCH_JOURNAL, {"moves": rel, "record": record, "tmp": tmp.name})


def drop_batch_journal(exp_dir: Path) -> None:
    """The renames are all made (or all undone) and the record says so."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(exp_dir / BATCH_JOURNAL)


def finish_batch_journal(exp_dir: Path) -> bool:
    """Make the renames a killed makebatch had left (each one whose source is still there and
    whose target is not), then write its record: every step is idempotent, so a crash in here
    is finished the same way. Call with the batch lock held. True when there was one."""
    try:
        journal = jsonio.read_json(exp_dir / BATCH_JOURNAL)
    except FileNotFoundError:  # (written atomically: never half a journal)
        return False
    for src, dst in journal["moves"]:
        if not (_inside(src) and _inside(dst)):  # a journal edited by hand never moves anything outside
            continue
        s, d = exp_dir / src, exp_dir / dst
        if os.path.lexists(s) and not os.path.lexists(d):
            d.parent.mkdir(parents=True, exist_ok=True)
            os.rename(s, d)
    jsonio.write_json(exp_dir / RECORD, journal["record"])
    tmp = str(journal.get("tmp", ""))
    if tmp.startswith(".mrl.batch-tmp-") and _inside(tmp) and "/" not in tmp:
        shutil.rmtree(exp_dir / tmp, ignore_errors=True)
    drop_batch_journal(exp_dir)
    log.warning(f"{exp_dir}: finished putting in place the sub-experiments of an mrl makebatch that was killed")
    return True


def _inside(rel: str) -> bool:
    """A journal's path is relative and stays in EXPDIR."""
    parts = Path(rel).parts
    return bool(parts) and not Path(rel).is_absolute() and ".." not in parts
