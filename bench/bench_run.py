"""Benchmark: dispatch overhead of `mrl run`, and `mrl status` / `mrl table` on big experiments.

1. N sub-experiments (default 500) whose command is `true`, 2 workers, wall time of
   `mrl run -j 2` (start-up, reading and writing every record and log included) against
   `xargs -P 2` (the floor), GNU parallel (the usual tool), and the peers mlrunner 0.5.9
   and Hydra multirun with the joblib launcher, all measured in this run.
2. `mrl status` (and `mrl table`, when it exists) on M sub-experiments (default 10,000),
   against `find EXPDIR -name .mrl.status | xargs cat` (the floor).

    python bench/bench_run.py [--n 500] [--m 10000] [--peers-venv /tmp/benchvenv] [--skip-hydra]

Peers are looked for in --peers-venv (`pip install mlrunner==0.5.9 hydra-core
hydra-joblib-launcher` there); a missing one is skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {
    # An installed mrl runs from compiled bytecode (pip writes it); without it each
    # command would compile ~30 modules again (~40 ms), which no user pays.
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "PYTHONPATH": str(ROOT),
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}
MRL = [sys.executable, "-m", "metarunlog"]


def sh(cmd: list[str] | str, cwd: Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, env=ENV, check=True, text=True, capture_output=True, shell=isinstance(cmd, str), **kw
    )  # type: ignore[call-overload]


def timed(cmd: list[str] | str, cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        cmd,
        cwd=cwd,
        env=ENV,
        check=True,
        shell=isinstance(cmd, str),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def make_project(root: Path, n: int, command: str) -> Path:
    """A git repo with an mrl project whose template makes n sub-experiments."""
    proj = root / f"proj{n}"
    proj.mkdir()
    sh(["git", "init", "-q"], proj)
    values = ", ".join(str(i) for i in range(n))
    (proj / "conf.txt").write_text(f"i = {{{{i}}}}\n# MRL:grid['i'] = [{values}]\n")
    sh(MRL + ["init"], proj)
    cfg = json.loads((proj / ".mrl.cfg").read_text())
    cfg.update(confTemplFile="conf.txt", copyFiles=["conf.txt"])
    cfg["run"] = {**cfg.get("run", {}), "command": command}
    (proj / ".mrl.cfg").write_text(json.dumps(cfg, indent=2))
    sh(["git", "add", "-A"], proj)
    sh(["git", "commit", "-q", "-m", "bench"], proj)
    return proj


def new_batch(proj: Path) -> None:
    sh(MRL + ["new", "bench"], proj)
    sh(MRL + ["makebatch"], proj)


def best(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    return min(fn() for _ in range(repeats))


# -- 1. dispatch -----------------------------------------------------------------------------------


def bench_dispatch(root: Path, n: int, venv: Path, skip_hydra: bool, repeats: int) -> None:
    print(f"## {n} jobs running `true`, 2 at a time (best of {repeats}; lower is better)")
    proj = make_project(root, n, "true")
    results: dict[str, float] = {}
    results["xargs -P 2 (floor)"] = best(lambda: timed(f"seq {n} | xargs -P 2 -I{{}} true", root), repeats)
    if shutil.which("parallel"):
        results["GNU parallel -j 2"] = best(lambda: timed(f"seq {n} | parallel -j 2 true", root), repeats)
    else:
        print("skipped GNU parallel: not installed (apt-get install -y parallel)")

    def mrl_run() -> float:
        new_batch(proj)
        return timed(MRL + ["run", "-j", "2"], proj)

    results["mrl run -j 2"] = best(mrl_run, repeats)
    _check_all_done(proj, n)
    mlrunner = venv / "bin" / "run"
    if mlrunner.exists():
        results["mlrunner 0.5.9 (2 resources)"] = _mlrunner(root, n, mlrunner)
    else:
        print(f"skipped mlrunner: {mlrunner} not found (pip install mlrunner==0.5.9 in {venv})")
    py = venv / "bin" / "python"
    if skip_hydra:
        print("skipped Hydra: --skip-hydra")
    elif (
        py.exists()
        and subprocess.run([py, "-c", "import hydra_plugins.hydra_joblib_launcher"], capture_output=True).returncode
        == 0
    ):
        results["Hydra multirun, joblib n_jobs=2"] = _hydra(root, n, py)
    else:
        print(f"skipped Hydra: hydra-core + hydra-joblib-launcher not installed in {venv}")
    _report(results, "xargs -P 2 (floor)")


def _check_all_done(proj: Path, n: int) -> None:
    rows = json.loads(sh(MRL + ["status", "--json"], proj).stdout)
    done = sum(r["state"] == "done" for r in rows)
    assert done == n, f"mrl run left {n - done} of {n} not done"


def _mlrunner(root: Path, n: int, run: Path) -> float:
    d = root / "mlrunner"
    d.mkdir()
    values = ", ".join(str(i) for i in range(n))
    (d / "params.yaml").write_text(f"template:\n  job: true {{i}}\nresource: [0, 1]\n---\ni: [{values}]\n")
    return timed([str(run), "-y", "params.yaml", "-o", "out"], d)


def _hydra(root: Path, n: int, py: Path) -> float:
    d = root / "hydra"
    d.mkdir()
    (d / "app.py").write_text(
        "import subprocess\nimport hydra\n\n"
        "@hydra.main(version_base=None, config_path=None, config_name=None)\n"
        "def main(cfg):\n    subprocess.run(['true'], check=True)\n\n"
        "if __name__ == '__main__':\n    main()\n"
    )
    cmd = [str(py), "app.py", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"+i=range(0,{n})"]
    return timed(cmd, d)


# -- 2. status / table ---------------------------------------------------------------------------


def bench_status(root: Path, m: int, repeats: int) -> None:
    print(f"\n## mrl status on {m} sub-experiments (best of {repeats})")
    proj = make_project(root, m, "true")
    new_batch(proj)
    exp = max((proj / "output").iterdir(), key=lambda p: p.name)
    record = {
        "state": "done",
        "exitCode": 0,
        "attempts": 1,
        "stepsDone": 1,
        "steps": 1,
        "start": "2024-01-01T00:00:00+00:00",
        "end": "2024-01-01T00:00:01+00:00",
        "duration": 1.0,
        "host": "bench",
        "pid": None,
        "runnerPid": 1,
        "resource": None,
        "backend": "local",
        "jobId": None,
        "node": None,
        "command": ["true"],
    }
    for sub in exp.iterdir():
        if sub.name.isdigit():
            (sub / ".mrl.status").write_text(json.dumps(record))
            (sub / "metrics.json").write_text(json.dumps({"loss": 0.1 * int(sub.name), "acc": 0.5}))
    floor = "find EXPDIR -name .mrl.status | xargs cat (floor)"
    results = {floor: best(lambda: timed(f"find {exp} -name .mrl.status | xargs cat", proj), repeats)}
    results["mrl status"] = best(lambda: timed(MRL + ["status"], proj), repeats)
    results["mrl status --json"] = best(lambda: timed(MRL + ["status", "--json"], proj), repeats)
    if (ROOT / "metarunlog" / "commands" / "table.py").exists():
        results["mrl table"] = best(lambda: timed(MRL + ["table"], proj), repeats)
    else:
        print("skipped mrl table: not in this checkout yet")
    results["python -c pass (interpreter start-up)"] = best(lambda: timed([sys.executable, "-c", "pass"], proj), 3)
    _report(results, floor)


def _report(results: dict[str, float], floor: str) -> None:
    base = results[floor]
    width = max(len(k) for k in results)
    for name, secs in results.items():
        print(f"  {name:<{width}}  {secs:8.3f} s  {secs / base:7.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="jobs for the dispatch benchmark")
    ap.add_argument("--m", type=int, default=10000, help="sub-experiments for the status benchmark")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peers-venv", type=Path, default=Path("/tmp/benchvenv"))
    ap.add_argument("--skip-hydra", action="store_true", help="Hydra takes about a minute for 500 jobs")
    ap.add_argument("--skip-status", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mrl-bench-") as tmp:
        root = Path(tmp)
        bench_dispatch(root, args.n, args.peers_venv, args.skip_hydra, args.repeats)
        if not args.skip_status:
            bench_status(root, args.m, args.repeats)


if __name__ == "__main__":
    main()
