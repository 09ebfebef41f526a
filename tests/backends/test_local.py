"""The local backend: the contract suite, plus slots, signals and concurrent runners."""

from __future__ import annotations

from tests.backends.contract import BackendContract


class TestLocalContract(BackendContract):
    backend_name = "local"
