"""The `slurm` fixture: a real single-node Slurm on localhost (scripts/slurm-up.sh).

CI (CI=true) and root always get a real cluster (started if needed; a failure to start
fails the tests, it does not skip them). Elsewhere, without root, the Slurm tests run
when a cluster is already up and are skipped otherwise.
"""

from __future__ import annotations

import os

import pytest

from tests.faults.conftest import read_only  # noqa: F401 -- the fixture, for a read-only experiment


@pytest.fixture(scope="session")
def slurm() -> None:
    from tests.slurm_cluster import ensure_cluster, slurm_available

    if os.geteuid() != 0 and not os.environ.get("CI") and not slurm_available():
        pytest.skip("no Slurm cluster is up and starting one needs root: run `bash scripts/slurm-up.sh`")
    ensure_cluster()
