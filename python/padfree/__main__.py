"""Command line: ``python -m padfree demo``."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _demo(args) -> int:
    import padfree

    rng = np.random.default_rng(args.seed)
    batch, heads, length = args.batch, args.heads, args.length
    lengths = rng.integers(5, length + 1, size=batch)
    scores = rng.standard_normal((batch, heads, length, length)).astype(np.float32)
    keep = np.arange(length)[None, :] < lengths[:, None]

    def numpy_padded():
        masked = np.where(keep[:, None, None, :], scores, -np.inf)
        masked = np.exp(masked - masked.max(axis=-1, keepdims=True))
        return masked / masked.sum(axis=-1, keepdims=True)

    def best_of(fn, repeats=5):
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            result = fn()
            best = min(best, time.perf_counter() - start)
        return result, best

    reference, numpy_time = best_of(numpy_padded)
    ours, ours_time = best_of(lambda: padfree.masked_softmax(scores, lengths=lengths))
    valid = keep.sum() / keep.size
    print(f"padfree {padfree.__version__} on {padfree.cpu_info()['isa']}, "
          f"{padfree.cpu_info()['num_threads']} threads")
    print(f"scores {scores.shape}, lengths {lengths.min()}..{lengths.max()}, "
          f"{100 * (1 - valid):.0f}% padding")
    print(f"numpy padded softmax : {numpy_time * 1e3:8.2f} ms")
    print(f"padfree with lengths : {ours_time * 1e3:8.2f} ms  "
          f"({numpy_time / ours_time:.1f}x faster)")
    print(f"max abs difference   : {np.abs(ours - reference).max():.2e}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="padfree", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="masked softmax with lengths vs padded NumPy")
    demo.add_argument("--batch", type=int, default=32)
    demo.add_argument("--heads", type=int, default=12)
    demo.add_argument("--length", type=int, default=128)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
