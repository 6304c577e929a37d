"""Reading weights and settings out of PyTorch encoder modules (imports torch lazily)."""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["encoder_state_from_torch"]


def encoder_state_from_torch(module, *, prefixed):
    """Return (state dict of NumPy arrays, from_state_dict settings) for `module`.

    `prefixed` selects nn.TransformerEncoder keys ("layers.{i}.") versus one
    nn.TransformerEncoderLayer's keys.
    """
    try:
        from torch import nn
    except ImportError as error:  # pragma: no cover - only without torch
        raise ImportError("from_torch needs PyTorch installed") from error

    final_norm = None
    if isinstance(module, nn.TransformerEncoderLayer):
        layers = [module]  # loaded into an Encoder, a lone layer becomes a one-layer stack
    elif isinstance(module, nn.TransformerEncoder) and prefixed:
        layers = list(module.layers)
        final_norm = module.norm
    else:
        wanted = ("torch.nn.TransformerEncoder or torch.nn.TransformerEncoderLayer" if prefixed
                  else "torch.nn.TransformerEncoderLayer")
        raise TypeError(f"module must be a {wanted}, got {type(module).__name__}")
    if not layers:
        raise ValueError("module has no layers")

    state, settings = {}, None
    for i, layer in enumerate(layers):
        prefix = f"layers.{i}." if prefixed else ""
        layer_settings = _layer_settings(layer, nn)
        if settings is None:
            settings = layer_settings
        elif layer_settings != settings:
            raise ValueError(f"layer {i} has settings {layer_settings}, unlike layer 0's "
                             f"{settings}; padfree needs every layer configured alike")
        state.update(_layer_state(layer, prefix, nn))

    if final_norm is not None:
        if not isinstance(final_norm, nn.LayerNorm):
            raise TypeError(f"the final norm must be a torch.nn.LayerNorm, "
                            f"got {type(final_norm).__name__}")
        weight, bias = _norm_params(final_norm, "norm")
        state["norm.weight"], state["norm.bias"] = weight, bias
        settings = dict(settings, final_norm_eps=float(final_norm.eps))
    return state, settings


def _numpy(tensor):
    return tensor.detach().to(device="cpu").float().numpy().copy()


def _layer_settings(layer, nn):
    attention = layer.self_attn
    if not attention._qkv_same_embed_dim:
        raise ValueError("self_attn must use one in_proj_weight (kdim == vdim == embed_dim)")
    if attention.bias_k is not None or attention.add_zero_attn:
        raise ValueError("self_attn with add_bias_kv or add_zero_attn is not supported")
    if layer.norm1.eps != layer.norm2.eps:
        raise ValueError(f"norm1.eps ({layer.norm1.eps}) and norm2.eps ({layer.norm2.eps}) "
                         f"differ; padfree uses one layer_norm_eps")
    return dict(
        num_heads=int(attention.num_heads),
        norm_first=bool(layer.norm_first),
        activation=_activation_name(layer.activation, nn),
        layer_norm_eps=float(layer.norm1.eps),
    )


def _activation_name(activation, nn):
    from torch.nn import functional

    if activation is functional.relu or isinstance(activation, nn.ReLU):
        return "relu"
    if activation is functional.gelu:
        return "gelu"
    if isinstance(activation, nn.GELU):
        return "gelu" if activation.approximate == "none" else "gelu_tanh"
    if (isinstance(activation, functools.partial) and activation.func is functional.gelu
            and not activation.args and set(activation.keywords) <= {"approximate"}):
        return "gelu" if activation.keywords.get("approximate", "none") == "none" else "gelu_tanh"
    raise ValueError(f"activation {activation!r} is not supported; padfree supports ReLU and "
                     f"GELU (exact or tanh)")


def _norm_params(norm, name):
    d = norm.normalized_shape[-1]
    if len(norm.normalized_shape) != 1:
        raise ValueError(f"{name} must normalise over the last axis only")
    weight = _numpy(norm.weight) if norm.weight is not None else np.ones(d, np.float32)
    bias = _numpy(norm.bias) if getattr(norm, "bias", None) is not None else np.zeros(
        d, np.float32)
    return weight, bias


def _linear_params(linear):
    weight = _numpy(linear.weight)
    bias = _numpy(linear.bias) if linear.bias is not None else np.zeros(
        weight.shape[0], np.float32)
    return weight, bias


def _layer_state(layer, prefix, nn):
    attention = layer.self_attn
    state = {}
    in_weight = _numpy(attention.in_proj_weight)
    in_bias = (_numpy(attention.in_proj_bias) if attention.in_proj_bias is not None
               else np.zeros(in_weight.shape[0], np.float32))
    state[prefix + "self_attn.in_proj_weight"] = in_weight
    state[prefix + "self_attn.in_proj_bias"] = in_bias
    for key, linear in (("self_attn.out_proj", attention.out_proj), ("linear1", layer.linear1),
                        ("linear2", layer.linear2)):
        state[prefix + key + ".weight"], state[prefix + key + ".bias"] = _linear_params(linear)
    for key, norm in (("norm1", layer.norm1), ("norm2", layer.norm2)):
        state[prefix + key + ".weight"], state[prefix + key + ".bias"] = _norm_params(
            norm, prefix + key)
    return state
