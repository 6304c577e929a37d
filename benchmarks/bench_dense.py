"""Dense kernels side by side with NumPy's float32 matmul (OpenBLAS) on the encoder's shapes.

Each (K, N, M, threads) case has a NumPy entry and a padfree entry in the same group; the
padfree entry's extra_info carries both GFLOP/s and ``ratio_vs_numpy`` (NumPy timed in the
same run). The fused GELU epilogue is compared with NumPy matmul + bias followed by a
NumPy GELU in separate passes. Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset so
OpenBLAS picks its own kernels:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=python \\
        python -m pytest benchmarks/bench_dense.py --benchmark-group-by=group

Rounds are sized so each entry takes a fraction of a second; ``--benchmark-disable`` runs
every case once as a smoke test.
"""

from __future__ import annotations

import functools
import math
import time

import numpy as np
import pytest

import padfree

threadpoolctl = pytest.importorskip("threadpoolctl")

SHAPES = [(384, 1152), (384, 384), (384, 1536), (1536, 384), (768, 2304), (768, 3072),
          (3072, 768)]
M_VALUES = [16, 128, 942, 4096]
THREADS = [1, 2]

# OpenBLAS's worker threads busy-wait for about 2^28 cycles after a call; on a 2-core
# machine they would take a core from padfree's threads timed right after NumPy.
_OPENBLAS_IDLE_SECONDS = 0.15

_numpy_seconds: dict = {}


# Consecutive entries (impl and threads vary fastest) share inputs; keep only a few.
@functools.lru_cache(maxsize=2)
def _inputs(k, n, m):
    rng = np.random.default_rng(k * 7 + n * 13 + m)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = (rng.standard_normal((n, k)) / math.sqrt(k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    return x, w, b


def _run(benchmark, fn, flops):
    """Rounds of >= ~2 ms each, about 0.3 s per entry; returns the median seconds."""
    iterations = max(1, int(2e8 // flops))
    rounds = max(3, min(30, int(3e10 // (flops * iterations * 100))))
    benchmark.pedantic(fn, rounds=rounds, iterations=iterations, warmup_rounds=1)
    if benchmark.disabled:
        return None
    return benchmark.stats.stats.median


def _median_seconds(fn, repeat=5):
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


# The first decorator varies fastest: each padfree entry runs right after its NumPy twin.
@pytest.mark.parametrize("impl", ["numpy", "padfree"])
@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("m", M_VALUES)
@pytest.mark.parametrize("k,n", SHAPES)
def bench_gemm(benchmark, impl, k, n, m, threads):
    x, w, _ = _inputs(k, n, m)
    flops = 2.0 * m * n * k
    benchmark.group = f"gemm K={k} N={n} M={m} threads={threads}"
    benchmark.extra_info.update(k=k, n=n, m=m, threads=threads)
    wt = w.T
    with threadpoolctl.threadpool_limits(limits=threads, user_api="blas"):
        numpy_fn = lambda: x @ wt  # noqa: E731
        if impl == "numpy":
            seconds = _run(benchmark, numpy_fn, flops)
            if seconds:
                _numpy_seconds[(k, n, m, threads)] = seconds
                benchmark.extra_info["gflops"] = flops / seconds / 1e9
            return
        layer = padfree.Linear(w)
        if not benchmark.disabled:
            time.sleep(_OPENBLAS_IDLE_SECONDS)
        seconds = _run(benchmark, lambda: layer(x, num_threads=threads), flops)
        if seconds:
            reference = _numpy_seconds.get((k, n, m, threads)) or _median_seconds(numpy_fn)
            benchmark.extra_info["gflops"] = flops / seconds / 1e9
            benchmark.extra_info["numpy_gflops"] = flops / reference / 1e9
            benchmark.extra_info["ratio_vs_numpy"] = reference / seconds


def _numpy_gelu_tanh(y):
    inner = np.float32(math.sqrt(2 / math.pi)) * (y + np.float32(0.044715) * y * y * y)
    return np.float32(0.5) * y * (np.float32(1) + np.tanh(inner))


@pytest.mark.parametrize("impl", ["numpy_two_steps", "padfree_fused_gelu_tanh",
                                  "padfree_fused_gelu_erf"])
@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("m", [128, 942])
@pytest.mark.parametrize("k,n", [(384, 1536), (768, 3072)])
def bench_gelu_epilogue(benchmark, impl, k, n, m, threads):
    x, w, b = _inputs(k, n, m)
    flops = 2.0 * m * n * k
    benchmark.group = f"gelu K={k} N={n} M={m} threads={threads}"
    benchmark.extra_info.update(k=k, n=n, m=m, threads=threads)
    wt = w.T
    with threadpoolctl.threadpool_limits(limits=threads, user_api="blas"):
        numpy_fn = lambda: _numpy_gelu_tanh(x @ wt + b)  # noqa: E731
        if impl == "numpy_two_steps":
            seconds = _run(benchmark, numpy_fn, flops)
        else:
            activation = "gelu_tanh" if impl.endswith("tanh") else "gelu"
            layer = padfree.Linear(w, b, activation=activation)
            if not benchmark.disabled:
                time.sleep(_OPENBLAS_IDLE_SECONDS)
            seconds = _run(benchmark, lambda: layer(x, num_threads=threads), flops)
            if seconds:
                benchmark.extra_info["ratio_vs_numpy"] = _median_seconds(numpy_fn) / seconds
    if seconds:
        benchmark.extra_info["gflops"] = flops / seconds / 1e9


@pytest.mark.parametrize("impl", ["numpy", "padfree"])
@pytest.mark.parametrize("m", [128, 4096])
def bench_layer_norm(benchmark, impl, m):
    d = 384
    rng = np.random.default_rng(m)
    x = rng.standard_normal((m, d)).astype(np.float32)
    r = rng.standard_normal((m, d)).astype(np.float32)
    gamma = rng.standard_normal(d).astype(np.float32)
    beta = rng.standard_normal(d).astype(np.float32)
    benchmark.group = f"layer_norm d={d} M={m}"

    def numpy_fn():
        z = x + r
        mean = z.mean(-1, keepdims=True)
        centred = z - mean
        var = (centred * centred).mean(-1, keepdims=True)
        return centred / np.sqrt(var + np.float32(1e-5)) * gamma + beta

    if impl == "numpy":
        benchmark(numpy_fn)
    else:
        benchmark(lambda: padfree.layer_norm(x, gamma, beta, residual=r, num_threads=1))
