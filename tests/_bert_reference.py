"""Test helpers for the BERT tests: a float64 NumPy BERT written from the Hugging Face key
names (independently of padfree's weight mapping), random checkpoints in the three key
layouts, and a minimal safetensors writer."""

from __future__ import annotations

import json
import math
import struct

import numpy as np


def write_safetensors(path, tensors):
    """float32/int64 arrays -> a safetensors file (independent of padfree's reader)."""
    codes = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}
    header, chunks, offset = {}, [], 0
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": codes[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def layer_norm64(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


try:
    from scipy.special import erf as _ERF
except ImportError:
    _ERF = np.vectorize(math.erf)


def activation64(name, x):
    if name in ("gelu",):
        return 0.5 * x * (1.0 + _ERF(x / math.sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if name == "relu":
        return np.maximum(x, 0.0)
    raise ValueError(name)


def _names(config, prefix, i):
    if config["model_type"] == "distilbert":
        b = f"{prefix}transformer.layer.{i}."
        return (b + "attention.q_lin", b + "attention.k_lin", b + "attention.v_lin",
                b + "attention.out_lin", b + "sa_layer_norm", b + "ffn.lin1", b + "ffn.lin2",
                b + "output_layer_norm")
    b = f"{prefix}encoder.layer.{i}."
    return (b + "attention.self.query", b + "attention.self.key", b + "attention.self.value",
            b + "attention.output.dense", b + "attention.output.LayerNorm",
            b + "intermediate.dense", b + "output.dense", b + "output.LayerNorm")


class _Float64View(dict):
    """Weights read as float64 on access (the big embedding tables are gathered first)."""

    def __getitem__(self, name):
        return np.asarray(dict.__getitem__(self, name), np.float64)


def bert_reference(weights, config, input_ids, attention_mask=None, token_type_ids=None,
                   prefix=""):
    """float64 forward of one padded batch, one sequence at a time over its valid tokens.

    Returns (last_hidden_state (B, L, D) with zeros at padding, pooler (B, D) or None).
    """
    w = _Float64View(weights)
    distil = config["model_type"] == "distilbert"
    roberta = config["model_type"] in ("roberta", "xlm-roberta")
    heads = config["n_heads" if distil else "num_attention_heads"]
    layers = config["n_layers" if distil else "num_hidden_layers"]
    act = config["activation" if distil else "hidden_act"]
    eps = 1e-12 if distil else config.get("layer_norm_eps", 1e-12)
    pad = config.get("pad_token_id", 1 if roberta else 0)
    B, L = input_ids.shape
    mask = np.ones((B, L), bool) if attention_mask is None else np.asarray(attention_mask) != 0
    types = np.zeros((B, L), np.int64) if token_type_ids is None else token_type_ids
    D = w[prefix + "embeddings.word_embeddings.weight"].shape[1]
    out = np.zeros((B, L, D))
    pooled = np.zeros((B, D))
    e = prefix + "embeddings."
    for b in range(B):
        cols = np.nonzero(mask[b])[0]
        if cols.size == 0:
            continue
        ids = input_ids[b, cols]
        if roberta:
            real = input_ids[b] != pad
            positions = (np.cumsum(real) * real + pad)[cols]
        else:
            positions = cols
        table = dict.__getitem__(w, e + "word_embeddings.weight")
        x = np.asarray(table[ids], np.float64)
        if not distil:
            x = x + w[e + "token_type_embeddings.weight"][types[b, cols]]
        x = x + w[e + "position_embeddings.weight"][positions]
        x = layer_norm64(x, w[e + "LayerNorm.weight"], w[e + "LayerNorm.bias"], eps)
        for i in range(layers):
            q, k, v, o, n1, f1, f2, n2 = _names(config, prefix, i)

            def lin(name, t):
                return t @ w[name + ".weight"].T + w[name + ".bias"]

            dh = D // heads
            Q, K, V = (lin(n, x).reshape(-1, heads, dh).transpose(1, 0, 2) for n in (q, k, v))
            s = Q @ K.transpose(0, 2, 1) / math.sqrt(dh)
            p = np.exp(s - s.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            a = (p @ V).transpose(1, 0, 2).reshape(-1, D)
            x = layer_norm64(x + lin(o, a), w[n1 + ".weight"], w[n1 + ".bias"], eps)
            h = lin(f2, activation64(act, lin(f1, x)))
            x = layer_norm64(x + h, w[n2 + ".weight"], w[n2 + ".bias"], eps)
        out[b, cols] = x
        if prefix + "pooler.dense.weight" in w:
            pooled[b] = np.tanh(x[0] @ w[prefix + "pooler.dense.weight"].T
                                + w[prefix + "pooler.dense.bias"])
    return out, (pooled if prefix + "pooler.dense.weight" in w else None)


def random_checkpoint(rng, model_type="bert", *, hidden=32, heads=4, layers=2, ffn=64,
                      vocab=50, max_positions=40, prefix="", pooler=True, act="gelu"):
    """A random config dict and weights with Hugging Face names for `model_type`."""
    distil = model_type == "distilbert"
    if distil:
        config = {"model_type": "distilbert", "dim": hidden, "n_heads": heads,
                  "n_layers": layers, "hidden_dim": ffn, "vocab_size": vocab,
                  "max_position_embeddings": max_positions, "activation": act,
                  "pad_token_id": 0}
    else:
        config = {"model_type": model_type, "hidden_size": hidden, "num_attention_heads": heads,
                  "num_hidden_layers": layers, "intermediate_size": ffn, "vocab_size": vocab,
                  "max_position_embeddings": max_positions, "hidden_act": act,
                  "type_vocab_size": 1 if model_type != "bert" else 2,
                  "layer_norm_eps": 1e-12, "pad_token_id": 1 if model_type != "bert" else 0,
                  "position_embedding_type": "absolute"}

    def normal(*shape, scale=0.2):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    weights = {}
    e = prefix + "embeddings."
    weights[e + "word_embeddings.weight"] = normal(vocab, hidden, scale=1.0)
    weights[e + "position_embeddings.weight"] = normal(max_positions, hidden, scale=0.5)
    if not distil:
        weights[e + "token_type_embeddings.weight"] = normal(config["type_vocab_size"], hidden,
                                                             scale=0.5)
        weights[e + "position_ids"] = np.arange(max_positions, dtype=np.int64)[None]
    weights[e + "LayerNorm.weight"] = 1 + normal(hidden, scale=0.1)
    weights[e + "LayerNorm.bias"] = normal(hidden, scale=0.1)
    for i in range(layers):
        q, k, v, o, n1, f1, f2, n2 = _names(config, prefix, i)
        for name, shape in ((q, (hidden, hidden)), (k, (hidden, hidden)), (v, (hidden, hidden)),
                            (o, (hidden, hidden)), (f1, (ffn, hidden)), (f2, (hidden, ffn))):
            weights[name + ".weight"] = normal(*shape, scale=1 / math.sqrt(shape[1]))
            weights[name + ".bias"] = normal(shape[0], scale=0.1)
        for name in (n1, n2):
            weights[name + ".weight"] = 1 + normal(hidden, scale=0.1)
            weights[name + ".bias"] = normal(hidden, scale=0.1)
    if pooler and not distil:
        weights[prefix + "pooler.dense.weight"] = normal(hidden, hidden,
                                                         scale=1 / math.sqrt(hidden))
        weights[prefix + "pooler.dense.bias"] = normal(hidden, scale=0.1)
    return config, weights


def save_model(directory, config, weights):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    write_safetensors(directory / "model.safetensors", weights)
    return directory
