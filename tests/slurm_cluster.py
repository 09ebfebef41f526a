"""A real single-node Slurm cluster on localhost for the tests (see scripts/slurm-up.sh).

Plain functions, no pytest fixtures:

    from slurm_cluster import ensure_cluster, slurm_available

    ensure_cluster()    # starts it if needed (once per process); RuntimeError on failure
    slurm_available()   # True if a usable node is up right now; never starts anything

The cluster has node `localhost` (4 CPUs by default), partitions `debug` (default) and
`other`, no accounting database (use `squeue -t all` / `scontrol show job`; finished
jobs stay visible for MinJobAge=300 s).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

SLURM_UP = Path(__file__).resolve().parent.parent / "scripts" / "slurm-up.sh"
_USABLE_STATES = {"idle", "mixed", "allocated", "completing"}

_lock = threading.Lock()
_up_result: tuple[bool, str] | None = None  # (ok, output) of this process's slurm-up.sh run


def slurm_available() -> bool:
    """True if `sinfo` reports node states and at least one node is usable (idle, mixed,
    allocated or completing). Side-effect free; takes milliseconds."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return False
    try:
        # `sinfo` spends ~9 s retrying when slurmctld is down; `scontrol ping` answers at once (rc 1)
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15, check=False)
        if ping.returncode != 0 or " is UP" not in ping.stdout:
            return False
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if out.returncode != 0:
        return False
    # states may carry suffixes such as "idle*" (not responding) or "mixed~"; those are unusable
    return any(line.strip() in _USABLE_STATES for line in out.stdout.splitlines())


def ensure_cluster() -> None:
    """Make sure the local cluster is up: if no usable node shows, run scripts/slurm-up.sh
    (at most once per process). Raises RuntimeError with the script's output on failure."""
    global _up_result
    if slurm_available():
        return
    with _lock:
        if slurm_available():
            return
        if _up_result is None:
            try:
                proc = subprocess.run(
                    ["bash", str(SLURM_UP)],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                output = (proc.stdout + proc.stderr).strip()
                ok = proc.returncode == 0
                if not ok:
                    output = f"exit code {proc.returncode}\n{output}"
            except (OSError, subprocess.TimeoutExpired) as exc:
                ok, output = False, f"{type(exc).__name__}: {exc}"
            _up_result = (ok, output)
        ok, output = _up_result
        if ok and slurm_available():
            return
        if ok:
            raise RuntimeError(f"{SLURM_UP} succeeded earlier in this process, but no Slurm node is usable now")
        raise RuntimeError(f"{SLURM_UP} failed: {output}")


SLURM_CONF = Path("/etc/slurm/slurm.conf")
SLURM_BASE = Path("/tmp/mrl-slurm")  # scripts/slurm-up.sh's default SLURM_BASE


@contextlib.contextmanager
def reconfigured(**settings: str) -> Iterator[None]:
    """The running cluster with these slurm.conf settings (`MaxArraySize="5"`), through
    `scontrol reconfigure`; the file and the running settings are restored on exit.

    The cluster is shared: keep the block short (submit, then leave it)."""
    original = SLURM_CONF.read_text()
    lines = [ln for ln in original.splitlines() if ln.split("=")[0] not in settings]
    SLURM_CONF.write_text("\n".join([*lines, *(f"{k}={v}" for k, v in settings.items())]) + "\n")
    try:
        subprocess.run(["scontrol", "reconfigure"], check=True, capture_output=True, timeout=60)
        yield
    finally:
        SLURM_CONF.write_text(original)
        subprocess.run(["scontrol", "reconfigure"], check=False, capture_output=True, timeout=60)


@contextlib.contextmanager
def preemptible() -> Iterator[None]:
    """The running cluster with partition `other` preempting `debug` by requeueing its jobs
    (PreemptType=preempt/partition_prio, PreemptMode=REQUEUE; `scontrol reconfigure` takes
    it), restored on exit. A job in `other` that needs the node's CPUs requeues what runs."""
    original = SLURM_CONF.read_text()
    tiers = {
        "PartitionName=debug": " PriorityTier=1 PreemptMode=REQUEUE",
        "PartitionName=other": " PriorityTier=2 PreemptMode=OFF",
    }
    lines = [ln + next((t for p, t in tiers.items() if ln.startswith(p + " ")), "") for ln in original.splitlines()]
    lines = [ln for ln in lines if ln.split("=")[0] not in ("PreemptType", "PreemptMode")]
    SLURM_CONF.write_text("\n".join([*lines, "PreemptType=preempt/partition_prio", "PreemptMode=REQUEUE"]) + "\n")
    try:
        subprocess.run(["scontrol", "reconfigure"], check=True, capture_output=True, timeout=60)
        yield
    finally:
        SLURM_CONF.write_text(original)
        subprocess.run(["scontrol", "reconfigure"], check=False, capture_output=True, timeout=60)


def _alive(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


@contextlib.contextmanager
def controller_stopped() -> Iterator[None]:
    """slurmctld stopped (its tasks go on under slurmd), started again on exit by
    scripts/slurm-up.sh. The cluster is shared: keep the block a few seconds long."""
    pid = int((SLURM_BASE / "slurmctld.pid").read_text().split()[0])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        yield
    finally:
        subprocess.run(["bash", str(SLURM_UP)], stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=True)
