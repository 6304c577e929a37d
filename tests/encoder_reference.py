"""A float64 NumPy Transformer encoder, written independently of padfree's kernels.

It follows PyTorch's nn.TransformerEncoderLayer formulas in eval mode, one sequence at a
time on its valid tokens, with padfree's rule that a query whose keys are all masked gets a
zero attention output.
"""

from __future__ import annotations

import math

import numpy as np

LAYER_KEYS = {
    "self_attn.in_proj_weight": lambda d, f: (3 * d, d),
    "self_attn.in_proj_bias": lambda d, f: (3 * d,),
    "self_attn.out_proj.weight": lambda d, f: (d, d),
    "self_attn.out_proj.bias": lambda d, f: (d,),
    "linear1.weight": lambda d, f: (f, d),
    "linear1.bias": lambda d, f: (f,),
    "linear2.weight": lambda d, f: (d, f),
    "linear2.bias": lambda d, f: (d,),
    "norm1.weight": lambda d, f: (d,),
    "norm1.bias": lambda d, f: (d,),
    "norm2.weight": lambda d, f: (d,),
    "norm2.bias": lambda d, f: (d,),
}


def random_state(rng, num_layers, d_model, dim_ff, final_norm=False, prefixed=True):
    """Random float32 weights scaled like a trained model's (unit-variance activations)."""
    state = {}
    for i in range(num_layers):
        prefix = f"layers.{i}." if prefixed else ""
        for key, shape_fn in LAYER_KEYS.items():
            shape = shape_fn(d_model, dim_ff)
            if key.startswith("norm"):
                base = 1.0 if key.endswith("weight") else 0.0
                value = base + 0.1 * rng.standard_normal(shape)
            elif key.endswith("bias"):
                value = 0.1 * rng.standard_normal(shape)
            else:
                value = rng.standard_normal(shape) / math.sqrt(shape[1])
            state[prefix + key] = value.astype(np.float32)
    if final_norm:
        state["norm.weight"] = (1 + 0.1 * rng.standard_normal(d_model)).astype(np.float32)
        state["norm.bias"] = (0.1 * rng.standard_normal(d_model)).astype(np.float32)
    return state


def _layer_norm(x, weight, bias, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _activation(x, name):
    if name == "relu":
        return np.maximum(x, 0)
    if name == "gelu":
        erf = np.vectorize(math.erf)
        return 0.5 * x * (1 + erf(x / math.sqrt(2)))
    inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
    return 0.5 * x * (1 + np.tanh(inner))


def _attention(h, w, heads, keep, bias):
    """h: (n, D); keep: (H, n, n) bool; bias: (H, n, n) float or None."""
    n, d = h.shape
    head_dim = d // heads
    qkv = h @ w["self_attn.in_proj_weight"].T + w["self_attn.in_proj_bias"]
    q, k, v = (qkv[:, i * d:(i + 1) * d].reshape(n, heads, head_dim).transpose(1, 0, 2)
               for i in range(3))
    scores = q @ k.transpose(0, 2, 1) / math.sqrt(head_dim)
    if bias is not None:
        scores = scores + bias
    scores = np.where(keep, scores, -np.inf)
    row_max = scores.max(axis=-1, keepdims=True, initial=-np.inf)
    dead = ~np.isfinite(row_max)
    weights = np.exp(scores - np.where(dead, 0, row_max))
    weights = np.where(dead, 0, weights / np.where(dead, 1, weights.sum(-1, keepdims=True)))
    out = (weights @ v).transpose(1, 0, 2).reshape(n, d)
    return out @ w["self_attn.out_proj.weight"].T + w["self_attn.out_proj.bias"]


def _feed_forward(h, w, activation):
    hidden = _activation(h @ w["linear1.weight"].T + w["linear1.bias"], activation)
    return hidden @ w["linear2.weight"].T + w["linear2.bias"]


def reference_encoder(state, x, *, num_heads, keep=None, attn_keep=None, attn_bias=None,
                      norm_first=False, activation="relu", eps=1e-5, final_eps=None):
    """Encoder output in float64.

    keep: (B, L) bool, True = real token. attn_keep / attn_bias: (B, H, L, L) by original
    positions (already combined with causal/window masks by the caller).
    """
    x = np.asarray(x, np.float64)
    batch, length, d = x.shape
    keep = np.ones((batch, length), bool) if keep is None else keep
    heads = num_heads
    weights = {k: v.astype(np.float64) for k, v in state.items()}
    count = 1 + max((int(k.split(".")[1]) for k in weights if k.startswith("layers.")),
                    default=-1)
    layers = ([{k[len(f"layers.{i}."):]: v for k, v in weights.items()
                if k.startswith(f"layers.{i}.")} for i in range(count)] if count else [weights])
    y = np.zeros_like(x)
    for b in range(batch):
        idx = np.nonzero(keep[b])[0]
        if not len(idx):
            continue
        h = x[b, idx]
        sub_keep = (np.ones((heads, len(idx), len(idx)), bool) if attn_keep is None
                    else attn_keep[b][:, idx][:, :, idx])
        sub_bias = None if attn_bias is None else attn_bias[b][:, idx][:, :, idx]
        for w in layers:
            n1 = (w["norm1.weight"], w["norm1.bias"], eps)
            n2 = (w["norm2.weight"], w["norm2.bias"], eps)
            if norm_first:
                h = h + _attention(_layer_norm(h, *n1), w, heads, sub_keep, sub_bias)
                h = h + _feed_forward(_layer_norm(h, *n2), w, activation)
            else:
                h = _layer_norm(h + _attention(h, w, heads, sub_keep, sub_bias), *n1)
                h = _layer_norm(h + _feed_forward(h, w, activation), *n2)
        if "norm.weight" in weights:
            h = _layer_norm(h, weights["norm.weight"], weights["norm.bias"],
                            eps if final_eps is None else final_eps)
        y[b, idx] = h
    return y
