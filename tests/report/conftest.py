"""Fixtures of the report tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from metarunlog.report import register, registered, unregister


@pytest.fixture
def restore_registry() -> Iterator[None]:
    """The section registry as it was before the test (which may register its own)."""
    before = registered()
    yield
    for s in registered():
        unregister(s.id)
    for s in before:
        register(s)
