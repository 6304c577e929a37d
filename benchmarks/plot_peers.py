"""Plot bench_peers.py results: median time per workload and system, and time per GFLOP of
valid-token work against the batch's padding ratio.

    python -m pytest benchmarks/bench_peers.py --benchmark-only --benchmark-json=peers.json
    python benchmarks/plot_peers.py peers.json peers.png

Also prints the table of medians (ms) and padfree's speedups. Needs matplotlib for the PNG;
without it only the table is printed.
"""

from __future__ import annotations

import argparse
import json
import sys

SYSTEMS = ["padfree", "ctranslate2", "onnxruntime", "torch"]


def load(path, interleaved=False):
    """(workload, system) -> median and sizes, from the sequential groups or, with
    `interleaved`, from the round-robin bench_interleaved results."""
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    rows = {}
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if interleaved and "system" not in info and "workload" in info:
            for key, value in info.items():
                if key.startswith("median_ms_"):
                    rows[info["workload"], key[len("median_ms_"):]] = dict(
                        median_ms=value, valid_tokens=info["valid_tokens"],
                        padded_tokens=info["padded_tokens"],
                        padding_ratio=round(1 - info["valid_tokens"] / info["padded_tokens"], 3),
                        valid_gflop=None)
            continue
        if interleaved or "system" not in info:
            continue
        rows[info["workload"], info["system"]] = dict(
            median_ms=bench["stats"]["median"] * 1e3,
            padding_ratio=info["padding_ratio"],
            valid_tokens=info["valid_tokens"],
            padded_tokens=info["padded_tokens"],
            valid_gflop=info.get("valid_gflop"),
        )
    return rows


def table(rows) -> str:
    workloads = list(dict.fromkeys(w for w, _ in rows))
    systems = [s for s in SYSTEMS if any((w, s) in rows for w in workloads)]
    lines = ["| workload | valid / padded | " + " | ".join(systems) + " | best peer / padfree |",
             "| --- | --- |" + " --- |" * (len(systems) + 1)]
    for w in workloads:
        any_row = next(rows[w, s] for s in systems if (w, s) in rows)
        padded = any_row["padded_tokens"]
        cells = [f"{rows[w, s]['median_ms']:.1f}" if (w, s) in rows else "-" for s in systems]
        peers = [rows[w, s]["median_ms"] for s in systems if s != "padfree" and (w, s) in rows]
        ratio = (f"{min(peers) / rows[w, 'padfree']['median_ms']:.2f}x"
                 if peers and (w, "padfree") in rows else "-")
        lines.append(f"| {w} | {any_row['valid_tokens']} / {padded} | " + " | ".join(cells)
                     + f" | {ratio} |")
    return "\n".join(lines)


def plot(rows, output):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(w for w, _ in rows))
    systems = [s for s in SYSTEMS if any((w, s) in rows for w in workloads)]
    figure, (bars, scatter) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / len(systems)
    for i, system in enumerate(systems):
        xs = [j + i * width for j, w in enumerate(workloads) if (w, system) in rows]
        ys = [rows[w, system]["median_ms"] for w in workloads if (w, system) in rows]
        bars.bar(xs, ys, width, label=system)
        # Time per GFLOP of valid-token work puts MiniLM and BERT-base on one scale.
        points = [(rows[w, system]["padding_ratio"],
                   rows[w, system]["median_ms"] / rows[w, system]["valid_gflop"])
                  for w in workloads if (w, system) in rows and rows[w, system]["valid_gflop"]]
        if not points:  # interleaved results carry no FLOP counts: per 1000 valid tokens
            points = [(rows[w, system]["padding_ratio"],
                       rows[w, system]["median_ms"] / rows[w, system]["valid_tokens"] * 1e3)
                      for w in workloads if (w, system) in rows]
        scatter.scatter(*zip(*points), label=system, s=40)
    bars.set_xticks([j + 0.4 - width / 2 for j in range(len(workloads))], workloads)
    bars.set_yscale("log")
    bars.set_ylabel("median ms per batch (log)")
    bars.set_title("time per workload, 2 threads")
    bars.legend()
    scatter.set_xlabel("padding ratio of the batch")
    scatter.set_ylabel("ms per GFLOP of valid-token work")
    scatter.set_yscale("log")
    scatter.set_title("cost per valid token against padding")
    scatter.legend()
    figure.tight_layout()
    figure.savefig(output, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json", help="pytest-benchmark JSON from bench_peers.py")
    parser.add_argument("png", nargs="?", default="peers.png")
    args = parser.parse_args(argv)
    rows = load(args.json)
    interleaved = load(args.json, interleaved=True)
    if not rows and not interleaved:
        print(f"{args.json} holds no bench_peers results", file=sys.stderr)
        return 1
    if rows:
        print("sequential groups, median ms:")
        print(table(rows))
    if interleaved:
        print("interleaved (round-robin, same background load), median ms:")
        print(table(interleaved))
    rows = rows or interleaved
    try:
        plot(rows, args.png)
    except ImportError:
        print("matplotlib is not installed: no PNG written", file=sys.stderr)
        return 0
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
