"""Fixtures of the trainer tests."""

from __future__ import annotations

import pytest

from trainer_fixtures import train_tiny


@pytest.fixture(scope="module")
def tiny_smp():
    return train_tiny("smp", 4)
