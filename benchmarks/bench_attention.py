"""padfree.attention side by side with the padded NumPy computation and PyTorch SDPA.

Run: python -m pytest benchmarks/bench_attention.py --benchmark-only
     --benchmark-columns=median,iqr,ops --benchmark-group-by=group

Each workload is a group with one row per implementation. padfree's rows carry in
extra_info the valid/padded score counts, GFLOP/s on valid work, and its speed-up over
each peer measured in interleaved rounds (robust to load on a shared machine).
test_time_per_valid_score shows that cost follows the valid scores, not the padded shape.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest

import padfree

SEED = 0
HEADS = 12


def skewed_lengths(rng, batch, low, high):
    """Most sequences short, one at the maximum: about 60% padding for 5..128."""
    lengths = low + np.floor((high - low + 1) * rng.random(batch) ** 2).astype(np.int64)
    lengths[0] = high
    return np.minimum(lengths, high)


def uniform_lengths(rng, batch, low, high):
    lengths = rng.integers(low, high + 1, size=batch)
    lengths[0] = high
    return lengths


WORKLOADS = {
    "skewed-B32-Dh32-len5..128": (32, 32, 128, lambda rng: skewed_lengths(rng, 32, 5, 128)),
    "bert-B8-Dh64-len32..384": (8, 64, 384, lambda rng: uniform_lengths(rng, 8, 32, 384)),
    "no-padding-B32-Dh32-len128": (32, 32, 128, lambda rng: np.full(32, 128)),
}


@functools.lru_cache(maxsize=None)
def make_workload(name):
    batch, head_dim, length, draw = WORKLOADS[name]
    rng = np.random.default_rng(SEED)
    lengths = draw(rng).astype(np.int64)
    q, k, v = rng.standard_normal((3, batch, HEADS, length, head_dim)).astype(np.float32)
    keep = np.arange(length)[None, :] < lengths[:, None]
    return q, k, v, lengths, keep


def describe(name, lengths, length, head_dim):
    valid_scores = int((lengths.astype(np.int64) ** 2).sum()) * HEADS
    padded_scores = len(lengths) * length * length * HEADS
    return {
        "workload": name,
        "token_padding": round(1 - lengths.sum() / (len(lengths) * length), 3),
        "score_padding": round(1 - valid_scores / padded_scores, 3),
        "valid_scores": valid_scores,
        # Q·Kᵀ and P·V: two multiply-adds per score and head dimension.
        "valid_gflop": 4 * valid_scores * head_dim / 1e9,
    }


def numpy_padded(q, k, v, keep):
    """What a padded implementation computes: every score, then masks."""
    scores = np.matmul(q, k.transpose(0, 1, 3, 2)) * np.float32(1 / np.sqrt(q.shape[-1]))
    scores = np.where(keep[:, None, None, :], scores, np.float32(-np.inf))
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)
    return np.matmul(scores, v)


def torch_sdpa(torch):
    def run(q, k, v, mask):
        with torch.inference_mode():
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    return run


def interleaved_medians(functions, rounds=7):
    """Median seconds of each function, timed in alternation so load drifts hit all alike."""
    times = [[] for _ in functions]
    for function in functions:
        function()
    for _ in range(rounds):
        for index, function in enumerate(functions):
            start = time.perf_counter()
            function()
            times[index].append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times]


def cpu_medians(functions, rounds=9, clock=time.thread_time):
    """Median CPU seconds per function, timed in alternation: single-threaded work
    measured this way is unaffected by other processes on a shared machine."""
    times = [[] for _ in functions]
    for function in functions:
        function()
    for _ in range(rounds):
        for index, function in enumerate(functions):
            start = clock()
            function()
            times[index].append(clock() - start)
    return [float(np.median(t)) for t in times]


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_torch_sdpa(benchmark, name):
    torch = pytest.importorskip("torch")
    q, k, v, lengths, keep = make_workload(name)
    args = [torch.from_numpy(a) for a in (q, k, v)]
    mask = torch.from_numpy(keep[:, None, None, :])
    benchmark.group = name
    benchmark.extra_info.update(describe(name, lengths, q.shape[2], q.shape[3]))
    benchmark(torch_sdpa(torch), *args, mask)


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_numpy_padded(benchmark, name):
    q, k, v, lengths, keep = make_workload(name)
    benchmark.group = name
    benchmark.extra_info.update(describe(name, lengths, q.shape[2], q.shape[3]))
    benchmark(numpy_padded, q, k, v, keep)


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_padfree(benchmark, name):
    q, k, v, lengths, keep = make_workload(name)
    benchmark.group = name
    info = describe(name, lengths, q.shape[2], q.shape[3])
    benchmark.extra_info.update(info)
    out = benchmark(padfree.attention, q, k, v, lengths=lengths)
    assert out.shape == q.shape
    if benchmark.disabled:
        return

    ours = lambda: padfree.attention(q, k, v, lengths=lengths)  # noqa: E731
    peers = {"numpy": lambda: numpy_padded(q, k, v, keep)}
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        args = [torch.from_numpy(a) for a in (q, k, v)]
        mask = torch.from_numpy(keep[:, None, None, :])
        sdpa = torch_sdpa(torch)
        peers["torch_sdpa"] = lambda: sdpa(*args, mask)
    medians = interleaved_medians([ours, *peers.values()])
    benchmark.extra_info["padfree_ms"] = round(medians[0] * 1e3, 3)
    benchmark.extra_info["gflops_valid"] = round(info["valid_gflop"] / medians[0], 1)
    for peer, median in zip(peers, medians[1:]):
        benchmark.extra_info[f"{peer}_ms"] = round(median * 1e3, 3)
        benchmark.extra_info[f"speedup_vs_{peer}"] = round(median / medians[0], 2)

    if torch is not None:
        # One thread each, process CPU time: the same comparison, immune to other load.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            cpu = cpu_medians(
                [lambda: padfree.attention(q, k, v, lengths=lengths, num_threads=1),
                 peers["torch_sdpa"]],
                clock=time.process_time,
            )
        finally:
            torch.set_num_threads(threads)
        benchmark.extra_info["one_thread_cpu_ms"] = round(cpu[0] * 1e3, 3)
        benchmark.extra_info["one_thread_torch_sdpa_cpu_ms"] = round(cpu[1] * 1e3, 3)
        benchmark.extra_info["one_thread_speedup_vs_torch_sdpa"] = round(cpu[1] / cpu[0], 2)


# Equal valid work (16 sequences of 128 tokens, 12 heads, Dh 32) padded to longer L.
PROPORTIONALITY = {"0%": 128, "50%": 256, "90%": 1280}


def test_time_per_valid_score(benchmark):
    """Cost follows the valid scores: the same 16 x 128 tokens padded to 0%, 50% and 90%.

    `kernel_*` times the attention itself (inputs read in place, output preallocated);
    `api_*` times padfree.attention, which also returns a zero-filled (B, H, L, Dh) array,
    an O(B * L * D) memory cost that a padded output cannot avoid.
    """
    from padfree import _core

    rng = np.random.default_rng(SEED)
    batch, head_dim = 16, 32
    lengths = np.full(batch, 128, np.int64)
    valid_scores = batch * 128 * 128 * HEADS
    api, kernel = {}, {}
    for ratio, length in PROPORTIONALITY.items():
        q, k, v = rng.standard_normal((3, batch, HEADS, length, head_dim)).astype(np.float32)
        out = np.zeros_like(q)
        api[ratio] = lambda q=q, k=k, v=v: padfree.attention(q, k, v, lengths=lengths,
                                                              num_threads=1)
        kernel[ratio] = lambda q=q, k=k, v=v, out=out: _core.attention_padded_f32(
            q, k, v, out, lengths, head_dim**-0.5, None, None, False, -1, -1, 1)

    benchmark.group = "proportionality"
    benchmark.extra_info["valid_scores"] = valid_scores
    benchmark(api["90%"])
    if benchmark.disabled:
        for call in [*api.values(), *kernel.values()]:
            call()
        return

    for label, calls in (("kernel", kernel), ("api", api)):
        medians = cpu_medians(list(calls.values()))
        per_score = [m / valid_scores * 1e9 for m in medians]
        for ratio, nanoseconds in zip(calls, per_score):
            benchmark.extra_info[f"{label}_ns_per_valid_score_{ratio}"] = round(nanoseconds, 4)
        benchmark.extra_info[f"{label}_max_over_min"] = round(max(per_score) / min(per_score), 3)
