"""Fault tests start commands in their own sessions: none may outlive its test."""

import pytest

from faults import reap_children


@pytest.fixture(autouse=True)
def _no_command_outlives_its_test():
    yield
    reap_children()
