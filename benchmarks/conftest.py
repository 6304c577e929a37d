"""pytest-benchmark suites: files are named bench_*.py, tests bench_* or test_*."""

from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line("python_files", "bench_*.py")
    config.addinivalue_line("python_functions", "bench_*")
