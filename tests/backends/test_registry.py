"""The backend registry: a backend added from this one file passes the contract suite and
is a choice of `mrl run --backend`, with its own config block and `mrl run` option."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from metarunlog.backends import registry
from metarunlog.backends.base import Backend, Job, RunOptions, observe
from metarunlog.backends.local import cancel_records
from metarunlog.backends.registry import BackendSpec, RunArg, Setting
from metarunlog.errors import ConfigError, MrlError
from metarunlog.execute import ExecOptions, Locked, Stopper, execute
from metarunlog.main import main
from metarunlog.project import Project
from metarunlog.states import JobState, observed_state
from tests.backends.contract import BackendContract, make_experiment

# -- a tiny backend: each job in a thread of its own, through the one execute() entry ----------


@dataclass
class FakeOptions:
    greeting: str = "hello"


class FakeBackend(Backend):
    name = "fake"

    @classmethod
    def run_options(cls, values: Mapping[str, Any], block: Mapping[str, Any]) -> FakeOptions:
        return FakeOptions(values.get("greeting") or block.get("greeting") or "hello")

    def __init__(self, exp: Any, options: RunOptions | None = None) -> None:
        super().__init__(exp, options)
        mine = self.own_options(FakeOptions)
        self.env = {**os.environ, "FAKE_GREETING": mine.greeting}
        self.stop = Stopper()
        self.threads: list[threading.Thread] = []
        self.mine: set[int] = set()

    def submit(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            job.state = JobState.QUEUED
            self.mine.add(id(job))
            self.threads.append(threading.Thread(target=self._run, args=(job,), daemon=True))
            self.threads[-1].start()

    def _run(self, job: Job) -> None:
        options = ExecOptions(
            backend=self.name,
            steps=job.steps or None,
            retries=self.options.retries,
            force=self.options.force,
            stop=self.stop,
            env=self.env,
        )
        try:
            job.status = execute(job.sub, options)
            job.state = job.status.state
        except Locked as e:
            job.skipped, job.message = True, str(e)
            job.state = observed_state(job.read_status())

    def poll(self, jobs: Sequence[Job]) -> list[JobState]:
        observe([j for j in jobs if id(j) not in self.mine])
        return [j.state for j in jobs]

    def cancel(self, jobs: Sequence[Job]) -> None:
        cancel_records(jobs)  # SIGTERM to the step's process group its record names

    def close(self) -> None:
        for t in self.threads:
            t.join()


FAKE = BackendSpec(
    "fake",
    f"{__name__}:FakeBackend",
    settings={"greeting": Setting("hello", (str,), lambda v: None if v.strip() else "must not be empty")},
    run_args=(RunArg(("--greeting",), "greeting", {"metavar": "WORD", "help": "fake: what the steps see"}),),
    liveness=True,
)


@pytest.fixture(autouse=True)
def fake_backend() -> Iterator[None]:
    registry.register(FAKE)
    yield
    registry.unregister(FAKE.name)


class TestFakeContract(BackendContract):
    backend_name = "fake"


# -- the registry is what the commands and the config ask --------------------------------------


def statuses(exp_dir: Path) -> dict[str, dict[str, Any]]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(exp_dir.glob("*/.mrl.status"))}


def test_mrl_run_backend_fake_runs_with_its_own_option_and_config_block(project: Path, capsys) -> None:
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], 'echo "$FAKE_GREETING {{x}}" > out.txt')
    assert main(["run", "--backend", "fake", "--greeting", "bonjour"]) == 0
    assert "on fake" in capsys.readouterr().out
    assert [s["backend"] for s in statuses(exp.dir).values()] == ["fake", "fake"]
    assert (exp.subexp_dir(2) / "out.txt").read_text() == "bonjour 2\n"
    (exp.dir / ".mrl.cfg").write_text(
        json.dumps(
            {"run": {"command": "echo $FAKE_GREETING > out.txt", "backend": "fake", "fake": {"greeting": "hej"}}}
        )
    )
    assert main(["run", "--force"]) == 0
    assert (exp.subexp_dir(1) / "out.txt").read_text() == "hej\n"
    assert main(["status"]) == 0 and "2 done" in capsys.readouterr().out


def test_a_registered_backend_is_a_choice_of_run_backend_and_run_help(capsys) -> None:
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "{local,slurm,fake}" in out and "--greeting WORD" in out


def test_the_backend_config_block_gets_its_defaults_and_is_validated(project: Path) -> None:
    cfg = Project.find(project).cfg
    assert cfg["run"]["fake"] == {"greeting": "hello"} and cfg["run"]["slurm"]["extra"] == []
    (project / ".mrl.cfg").write_text(json.dumps({"run": {"backend": "fake", "fake": {"greeting": 3}}}))
    with pytest.raises(ConfigError, match="'run.fake.greeting' must be a string"):
        _ = Project.find(project).cfg
    (project / ".mrl.cfg").write_text(json.dumps({"run": {"fake": {"greeting": " "}}}))
    with pytest.raises(ConfigError, match="'run.fake.greeting' must not be empty"):
        _ = Project.find(project).cfg


def test_an_unknown_backend_names_the_registered_ones() -> None:
    with pytest.raises(MrlError, match="unknown backend 'nope': use one of local, slurm, fake"):
        registry.get_backend("nope")


def test_every_builtin_backend_subclasses_backend() -> None:
    for spec in registry.specs():
        assert issubclass(spec.load(), Backend), spec.name
