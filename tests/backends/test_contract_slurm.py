"""The backend contract (tests/backends/contract.py) against a real single-node Slurm."""

from __future__ import annotations

import pytest

from tests.backends.contract import BackendContract


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm")
class TestSlurmContract(BackendContract):
    backend_name = "slurm"
    timeout = 120.0
