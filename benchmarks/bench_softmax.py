"""Masked softmax on attention scores of shape (32, 12, 128, 128), float32.

Padded: a key-padding mask of skewed lengths 5..128 (about 60% padding), through `mask`
(boolean, (B, 1, 1, L)) and through `lengths`, side by side with the NumPy expression of
the same thing and, when installed, torch.softmax after masked_fill.

Unpadded: padfree next to the memory-bandwidth bound measured in the same run, a NumPy
copy of the same bytes (np.copyto reads the scores once and writes them once, which is
all a softmax has to move).

Ratios of medians go into extra_info: speedup_vs_numpy and speedup_vs_torch on the padded
workload, ratio_to_copy on the unpadded one (1.0 = at the bandwidth bound). A ratio is
left out when its peer did not run earlier in the same session.
"""

from __future__ import annotations

import numpy as np
import pytest

import padfree

BATCH, HEADS, LENGTH = 32, 12, 128
THREADS = [None, 1]  # OpenMP's default (every core) and one thread

_medians: dict[str, float] = {}  # benchmark name -> median seconds, for ratios in this run


@pytest.fixture(scope="module")
def workload():
    rng = np.random.default_rng(2)
    # Skewed like real sentence batches: many short, a few long.
    lengths = np.clip(np.round(rng.lognormal(np.log(42), 0.7, BATCH)), 5, LENGTH)
    lengths = lengths.astype(np.int64)
    scores = rng.standard_normal((BATCH, HEADS, LENGTH, LENGTH)).astype(np.float32)
    keep = (np.arange(LENGTH) < lengths[:, None])[:, None, None, :]
    return dict(scores=scores, lengths=lengths, keep=keep, out=np.empty_like(scores),
                padding=float(1 - lengths.sum() / (BATCH * LENGTH)))


def _record(benchmark, name, **extra):
    """Keep this benchmark's median and add the ratios to peers measured before it."""
    benchmark.extra_info["shape"] = [BATCH, HEADS, LENGTH, LENGTH]
    benchmark.extra_info.update(extra)
    stats = getattr(benchmark, "stats", None)
    if benchmark.disabled or stats is None:
        return None
    median = stats.stats.median
    _medians[name] = median
    return median


def _ratio(benchmark, key, numerator, denominator):
    if numerator in _medians and denominator in _medians:
        benchmark.extra_info[key] = round(_medians[numerator] / _medians[denominator], 3)


def _numpy_masked_softmax(scores, keep):
    filled = np.where(keep, scores, np.float32(-np.inf))
    filled -= filled.max(axis=-1, keepdims=True)
    np.exp(filled, out=filled)
    filled /= filled.sum(axis=-1, keepdims=True)
    return filled


# --------------------------------------------------------------------------------------
# About 60% padding


def test_padded_numpy(benchmark, workload):
    result = benchmark(_numpy_masked_softmax, workload["scores"], workload["keep"])
    _record(benchmark, "padded_numpy", padding=workload["padding"])
    expected = padfree.masked_softmax(workload["scores"], lengths=workload["lengths"])
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-7)


def test_padded_torch(benchmark, workload):
    torch = pytest.importorskip("torch")
    scores = torch.from_numpy(workload["scores"])
    removed = torch.from_numpy(~workload["keep"])

    def run():
        return torch.softmax(scores.masked_fill(removed, float("-inf")), dim=-1)

    result = benchmark(run)
    _record(benchmark, "padded_torch", padding=workload["padding"],
            torch_threads=torch.get_num_threads())
    expected = padfree.masked_softmax(workload["scores"], workload["keep"])
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("threads", THREADS, ids=["default-threads", "1-thread"])
def test_padded_padfree_mask(benchmark, workload, threads):
    benchmark(padfree.masked_softmax, workload["scores"], workload["keep"], num_threads=threads)
    name = f"padded_mask_{threads}"
    _record(benchmark, name, padding=workload["padding"],
            threads=threads or padfree.cpu_info()["num_threads"])
    _ratio(benchmark, "speedup_vs_numpy", "padded_numpy", name)
    _ratio(benchmark, "speedup_vs_torch", "padded_torch", name)


@pytest.mark.parametrize("threads", THREADS, ids=["default-threads", "1-thread"])
def test_padded_padfree_lengths(benchmark, workload, threads):
    benchmark(padfree.masked_softmax, workload["scores"], lengths=workload["lengths"],
              num_threads=threads)
    name = f"padded_lengths_{threads}"
    _record(benchmark, name, padding=workload["padding"],
            threads=threads or padfree.cpu_info()["num_threads"])
    _ratio(benchmark, "speedup_vs_numpy", "padded_numpy", name)
    _ratio(benchmark, "speedup_vs_torch", "padded_torch", name)


# --------------------------------------------------------------------------------------
# No padding, against the bandwidth bound


def test_unpadded_copy_bound(benchmark, workload):
    benchmark(np.copyto, workload["out"], workload["scores"])
    _record(benchmark, "copy", bytes_moved=2 * workload["scores"].nbytes)


def test_unpadded_numpy(benchmark, workload):
    scores = workload["scores"]

    def run():
        shifted = scores - scores.max(axis=-1, keepdims=True)
        np.exp(shifted, out=shifted)
        shifted /= shifted.sum(axis=-1, keepdims=True)
        return shifted

    benchmark(run)
    _record(benchmark, "unpadded_numpy")


def test_unpadded_torch(benchmark, workload):
    torch = pytest.importorskip("torch")
    scores = torch.from_numpy(workload["scores"])
    benchmark(torch.softmax, scores, -1)
    _record(benchmark, "unpadded_torch", torch_threads=torch.get_num_threads())


@pytest.mark.parametrize("threads", THREADS, ids=["default-threads", "1-thread"])
def test_unpadded_padfree(benchmark, workload, threads):
    # Into a preallocated output, like the copy it is compared with.
    benchmark(padfree.masked_softmax, workload["scores"], out=workload["out"],
              num_threads=threads)
    name = f"unpadded_{threads}"
    _record(benchmark, name, threads=threads or padfree.cpu_info()["num_threads"])
    _ratio(benchmark, "ratio_to_copy", name, "copy")
    _ratio(benchmark, "speedup_vs_numpy", "unpadded_numpy", name)
    _ratio(benchmark, "speedup_vs_torch", "unpadded_torch", name)


def test_unpadded_padfree_new_output(benchmark, workload):
    # A fresh output each call, as most callers use it: adds the allocation's page faults.
    benchmark(padfree.masked_softmax, workload["scores"])
    _record(benchmark, "unpadded_new_output")
    _ratio(benchmark, "ratio_to_copy", "unpadded_new_output", "copy")
