"""Shared fixtures: run kernel tests under every ISA this machine supports."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import padfree
from padfree import _core

settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# The sanitizer run is ~10x slower; fewer examples keep CI short.
settings.register_profile(
    "ci-short", max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("default")

SUPPORTED_ISAS = padfree.cpu_info()["supported_isas"]


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long tests, skipped in the sanitizer run")


@pytest.fixture(params=SUPPORTED_ISAS)
def isa(request):
    """Force one ISA for the duration of a test, then restore the previous one."""
    previous = _core.get_isa()
    _core.set_isa(request.param)
    yield request.param
    _core.set_isa(previous)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def num_threads(request):
    return request.param


@pytest.fixture
def rng(request):
    """A fresh generator per test, seeded from the test's name so failures reproduce."""
    # zlib.crc32, not hash(): str hashes are salted per process (PYTHONHASHSEED).
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)

