"""The encoder end to end: a 6-layer d_model=512 ReLU encoder on a batch of 16 sequences of
10..256 tokens, 2 threads, side by side with PyTorch's fast path (nested tensors) and with
padfree itself on the padded shape; plus 2 Python threads x 1 OpenMP thread against 1 x 2 on
many small batches.

Ratios and GFLOP/s (counted on valid tokens only) go into extra_info; the NumPy sgemm rate
measured in the same run is the reference for "fraction of peak".
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import padfree

LAYERS, D_MODEL, HEADS, DIM_FF = 6, 512, 8, 2048
BATCH, MIN_LEN, MAX_LEN = 16, 10, 256
THREADS = 2

_medians: dict[str, float] = {}  # benchmark name -> median seconds, for ratios in this run

# OpenBLAS's and PyTorch's worker threads busy-wait for a while after a call; on a 2-core
# machine they would take a core from whatever is timed next.
_PEER_IDLE_SECONDS = 0.3


def _random_state(rng):
    state = {}
    for i in range(LAYERS):
        p = f"layers.{i}."
        for key, shape in (("self_attn.in_proj", (3 * D_MODEL, D_MODEL)),
                           ("self_attn.out_proj", (D_MODEL, D_MODEL)),
                           ("linear1", (DIM_FF, D_MODEL)), ("linear2", (D_MODEL, DIM_FF))):
            weight = rng.standard_normal(shape) / np.sqrt(shape[1])
            bias = 0.1 * rng.standard_normal(shape[0])
            name = "self_attn.in_proj_" if key == "self_attn.in_proj" else key + "."
            state[p + name + "weight"] = weight.astype(np.float32)
            state[p + name + "bias"] = bias.astype(np.float32)
        for norm in ("norm1", "norm2"):
            state[p + norm + ".weight"] = (1 + 0.1 * rng.standard_normal(D_MODEL)).astype(
                np.float32)
            state[p + norm + ".bias"] = (0.1 * rng.standard_normal(D_MODEL)).astype(np.float32)
    return state


@pytest.fixture(scope="module")
def workload():
    rng = np.random.default_rng(2024)
    state = _random_state(rng)
    encoder = padfree.Encoder.from_state_dict(state, num_heads=HEADS, activation="relu")
    lengths = rng.integers(MIN_LEN, MAX_LEN + 1, size=BATCH)
    length = int(lengths.max())
    x = rng.standard_normal((BATCH, length, D_MODEL)).astype(np.float32)
    return dict(state=state, encoder=encoder, lengths=lengths, x=x,
                flops=_encoder_flops(lengths), padded_flops=_encoder_flops([length] * BATCH))


def _encoder_flops(lengths):
    """Multiply-adds x 2 of the projections, feed-forward and attention on valid tokens."""
    lengths = np.asarray(lengths, dtype=np.float64)
    tokens = lengths.sum()
    dense = 2 * tokens * (4 * D_MODEL * D_MODEL + 2 * D_MODEL * DIM_FF)
    attention = 4 * (lengths**2).sum() * D_MODEL  # Q K^T and P V
    return LAYERS * (dense + attention)


@pytest.fixture(scope="module")
def sgemm_gflops(workload):
    """NumPy's float32 GEMM rate on the feed-forward shape, THREADS threads, best of 10."""
    tokens = int(workload["lengths"].sum())
    rng = np.random.default_rng(1)
    a = rng.standard_normal((tokens, D_MODEL)).astype(np.float32)
    b = rng.standard_normal((D_MODEL, DIM_FF)).astype(np.float32)
    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(THREADS)
    except ImportError:  # OpenBLAS then uses its default thread count
        limits = None
    try:
        # padfree's OpenMP workers may still be spinning from an earlier benchmark; let
        # them sleep so NumPy gets both cores.
        time.sleep(_PEER_IDLE_SECONDS)
        a @ b
        best = min(_timed(lambda: a @ b) for _ in range(10))
    finally:
        if limits is not None:
            limits.restore_original_limits()
        time.sleep(_PEER_IDLE_SECONDS)
    return 2 * tokens * D_MODEL * DIM_FF / best / 1e9


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _record(benchmark, name, flops, sgemm=None):
    stats = getattr(benchmark, "stats", None)
    if not stats:  # --benchmark-disable: nothing measured
        return None
    median = stats.stats.median
    _medians[name] = median
    gflops = flops / median / 1e9
    benchmark.extra_info["median_ms"] = round(median * 1e3, 2)
    benchmark.extra_info["valid_token_gflops"] = round(gflops, 1)
    if sgemm:
        benchmark.extra_info["numpy_sgemm_gflops"] = round(sgemm, 1)
        benchmark.extra_info["fraction_of_sgemm"] = round(gflops / sgemm, 3)
    return median


def _ratio(benchmark, key, slower, faster):
    if slower in _medians and faster in _medians:
        benchmark.extra_info[key] = round(_medians[slower] / _medians[faster], 2)


def bench_padfree(benchmark, workload, sgemm_gflops):
    encoder, x, lengths = workload["encoder"], workload["x"], workload["lengths"]
    benchmark.group = "encoder 6x512 B=16 len 10..256"
    benchmark.extra_info["valid_tokens"] = int(lengths.sum())
    benchmark.extra_info["padded_tokens"] = int(x.shape[0] * x.shape[1])
    if not benchmark.disabled:
        encoder(x, lengths=lengths, num_threads=THREADS)  # warm-up
    benchmark(encoder, x, lengths=lengths, num_threads=THREADS)
    _record(benchmark, "padfree", workload["flops"], sgemm_gflops)


def bench_padfree_without_padding_removal(benchmark, workload, sgemm_gflops):
    """The same batch computed as if every sequence were L long (what padding costs)."""
    encoder, x = workload["encoder"], workload["x"]
    benchmark.group = "encoder 6x512 B=16 len 10..256"
    benchmark(encoder, x, num_threads=THREADS)
    # GFLOP/s on the valid tokens: the useful work per second.
    _record(benchmark, "padfree_padded", workload["flops"], sgemm_gflops)
    _ratio(benchmark, "slowdown_vs_padfree", "padfree_padded", "padfree")


def bench_torch_fast_path(benchmark, workload, sgemm_gflops):
    torch = pytest.importorskip("torch")
    import warnings

    from padfree._torch_import import encoder_state_from_torch

    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(D_MODEL, HEADS, DIM_FF, activation="relu",
                                             batch_first=True)
    module = torch.nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=True).eval()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in workload["state"].items()})
    assert encoder_state_from_torch(module, prefixed=True)[1]["num_heads"] == HEADS

    x = torch.from_numpy(workload["x"])
    lengths = workload["lengths"]
    pad = torch.from_numpy(np.arange(x.shape[1])[None, :] >= lengths[:, None])
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)

    def run():
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nested-tensor prototype notice
            return module(x, src_key_padding_mask=pad)

    try:
        if not benchmark.disabled:  # warm-up, and the agreement of the two outputs
            out = run()
            ours = workload["encoder"](workload["x"], lengths=lengths, num_threads=THREADS)
            valid = ~pad.numpy()
            benchmark.extra_info["max_abs_diff_vs_padfree"] = float(
                np.abs(out.numpy()[valid] - ours[valid]).max())
        benchmark.group = "encoder 6x512 B=16 len 10..256"
        benchmark(run)
    finally:
        torch.set_num_threads(previous)
        time.sleep(_PEER_IDLE_SECONDS)
    _record(benchmark, "torch", workload["flops"], sgemm_gflops)
    _ratio(benchmark, "padfree_speedup", "torch", "padfree")


# ------------------------------------------------------------------ Python threads


SMALL_BATCHES, SMALL_BATCH = 16, 2


@pytest.fixture(scope="module")
def small_batches(workload):
    rng = np.random.default_rng(7)
    batches = []
    for _ in range(SMALL_BATCHES):
        lengths = rng.integers(8, 33, size=SMALL_BATCH)
        x = rng.standard_normal((SMALL_BATCH, int(lengths.max()), D_MODEL)).astype(np.float32)
        batches.append((x, lengths))
    flops = sum(_encoder_flops(n) for _, n in batches)
    return workload["encoder"], batches, flops


def bench_small_batches_1_python_x_2_openmp(benchmark, small_batches):
    encoder, batches, flops = small_batches
    benchmark.group = "16 small batches (2 x 8..32 tokens)"

    def serial():
        return [encoder(x, lengths=n, num_threads=2) for x, n in batches]

    benchmark(serial)
    _record(benchmark, "serial_2omp", flops)


def bench_small_batches_2_python_x_1_openmp(benchmark, small_batches):
    encoder, batches, flops = small_batches
    benchmark.group = "16 small batches (2 x 8..32 tokens)"
    with ThreadPoolExecutor(max_workers=2) as pool:

        def threaded():
            return list(pool.map(lambda b: encoder(b[0], lengths=b[1], num_threads=1), batches))

        benchmark(threaded)
    _record(benchmark, "threads_2x1", flops)
    _ratio(benchmark, "speedup_vs_1x2", "serial_2omp", "threads_2x1")
