"""Dense layers: padfree.Linear, padfree.linear and padfree.layer_norm.

Everything here computes in float32, the dtype of the kernels. Arrays of any other dtype,
float64 included, are rejected with TypeError rather than rounded behind the caller's back:
convert explicitly with ``a.astype(np.float32)``. Caller arrays are never modified.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import _core
from ._checks import check_num_threads, shape_str

__all__ = ["Linear", "layer_norm", "linear"]

_ACTIVATIONS = {None: 0, "relu": 1, "gelu": 2, "gelu_tanh": 3}


def _float32(value, name: str) -> np.ndarray:
    array = value if type(value) is np.ndarray else np.asarray(value)
    if array.dtype == np.float32:
        return array
    if array.dtype == np.dtype(">f4"):
        return array.astype(np.float32)
    raise TypeError(
        f"{name} must have dtype float32, got {array.dtype}; padfree's dense kernels compute "
        f"in float32 and do not round other dtypes implicitly (use {name}.astype(np.float32))"
    )


def _rows(array: np.ndarray) -> np.ndarray:
    """A 2-D view (or copy) of `array` with rows on axis 0 and a contiguous last axis."""
    flat = array.reshape(math.prod(array.shape[:-1]), array.shape[-1])
    if flat.shape[1] > 1 and flat.strides[1] != 4 or not flat.flags.aligned:
        flat = np.require(flat, requirements="CA")
    if flat.shape[0] > 1 and flat.strides[0] % 4:
        flat = np.require(flat, requirements="CA")
    return flat


def _check_finite(array: np.ndarray, name: str) -> None:
    if not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} must be finite, got {bad} NaN or infinite entries")


def _activation_code(activation) -> int:
    if activation is not None and not isinstance(activation, str):
        raise TypeError(
            f"activation must be None or a str, got {type(activation).__name__}"
        )
    if activation not in _ACTIVATIONS:
        raise ValueError(
            f"activation must be one of None, 'relu', 'gelu', 'gelu_tanh', got {activation!r}"
        )
    return _ACTIVATIONS[activation]


class Linear:
    """``y = activation(x @ weight.T + bias) + residual``, with the weights packed once.

    Args:
        weight: float32 array of shape ``(out_features, in_features)``, PyTorch's
            ``nn.Linear.weight`` layout. Copied and packed at construction; it must be
            finite.
        bias: optional float32 array of shape ``(out_features,)``, finite.
        activation: None, ``"relu"``, ``"gelu"`` (the exact erf form, PyTorch's default)
            or ``"gelu_tanh"`` (the tanh approximation, ``approximate="tanh"``).

    Calling the layer on ``x`` of shape ``(..., in_features)`` returns a new float32 array
    of shape ``(..., out_features)``. ``residual`` (same shape as the output) is added
    after the activation. The result for each row does not depend on the other rows nor
    on ``num_threads``: it is bit-identical whether a row is computed alone or in a batch.

    Linear objects pickle (through their unpacked weights) and may be called from several
    Python threads at once.

    Example:
        >>> import numpy as np, padfree
        >>> rng = np.random.default_rng(0)
        >>> w = rng.standard_normal((8, 4)).astype(np.float32)
        >>> layer = padfree.Linear(w, activation="gelu")
        >>> layer(rng.standard_normal((2, 3, 4)).astype(np.float32)).shape
        (2, 3, 8)
    """

    def __init__(self, weight, bias=None, activation=None):
        self._activation_code = _activation_code(activation)
        self._activation = activation
        weight = _float32(weight, "weight")
        if weight.ndim != 2:
            raise ValueError(
                f"weight must have shape (out_features, in_features), got shape "
                f"{shape_str(weight.shape)}"
            )
        _check_finite(weight, "weight")
        if bias is not None:
            bias = _float32(bias, "bias")
            if bias.shape != (weight.shape[0],):
                raise ValueError(
                    f"bias must have shape ({weight.shape[0]},) to match weight "
                    f"{shape_str(weight.shape)}, got {shape_str(bias.shape)}"
                )
            _check_finite(bias, "bias")
        # The binding takes C-contiguous float32 as is; np.require also copies unaligned data.
        self._layer = _core.PackedLinear(
            np.require(weight, requirements="CA"),
            None if bias is None else np.require(bias, requirements="CA"),
        )
        self._out_features, self._in_features = weight.shape

    @property
    def in_features(self) -> int:
        return self._in_features

    @property
    def out_features(self) -> int:
        return self._out_features

    @property
    def activation(self):
        return self._activation

    @property
    def weight(self) -> np.ndarray:
        """A float32 copy of the weight, shape ``(out_features, in_features)``."""
        return self._layer.unpack()[0]

    @property
    def bias(self):
        """A float32 copy of the bias, or None."""
        return self._layer.unpack()[1]

    def __repr__(self) -> str:
        return (
            f"padfree.Linear(in_features={self.in_features}, "
            f"out_features={self.out_features}, activation={self._activation!r})"
        )

    def __getstate__(self):
        weight, bias = self._layer.unpack()
        return {"weight": weight, "bias": bias, "activation": self._activation}

    def __setstate__(self, state):
        self.__init__(state["weight"], state["bias"], state["activation"])

    def __call__(self, x, residual=None, num_threads=None) -> np.ndarray:
        x = _float32(x, "x")
        if x.ndim == 0 or x.shape[-1] != self._in_features:
            raise ValueError(
                f"x must have shape (..., {self._in_features}) (in_features of the layer), got "
                f"{shape_str(x.shape)}"
            )
        threads = check_num_threads(num_threads)
        out_shape = x.shape[:-1] + (self._out_features,)
        residual_rows = None
        if residual is not None:
            residual = _float32(residual, "residual")
            if residual.shape != out_shape:
                raise ValueError(
                    f"residual must have the output's shape {shape_str(out_shape)}, got "
                    f"{shape_str(residual.shape)}"
                )
            residual_rows = _rows(residual)
        out = np.empty(out_shape, np.float32)
        if out.size:
            self._layer.forward(
                _rows(x), out.reshape(-1, self._out_features), residual_rows,
                self._activation_code, threads,
            )
        return out


def linear(x, weight, bias=None, activation=None, residual=None, num_threads=None):
    """One-shot ``activation(x @ weight.T + bias) + residual``; see :class:`Linear`.

    Packs the weights on every call: for repeated use build a :class:`Linear` once.

    Example:
        >>> import numpy as np, padfree
        >>> x = np.ones((2, 3), np.float32); w = np.ones((4, 3), np.float32)
        >>> padfree.linear(x, w, activation="relu").tolist()[0]
        [3.0, 3.0, 3.0, 3.0]
    """
    return Linear(weight, bias, activation)(x, residual=residual, num_threads=num_threads)


def layer_norm(x, gamma, beta, eps=1e-5, residual=None, num_threads=None):
    """LayerNorm over the last axis: ``(z - mean) / sqrt(var + eps) * gamma + beta``.

    ``z = x + residual`` when ``residual`` is given (the fused residual add of a post-norm
    encoder block), else ``x``; ``var`` is the biased variance, as in PyTorch.

    Args:
        x: float32 array of shape ``(..., d)``.
        gamma, beta: float32 arrays of shape ``(d,)``.
        eps: positive float added to the variance.
        residual: optional float32 array of the shape of ``x``.
        num_threads: OpenMP threads for this call; None uses OpenMP's default.

    Returns:
        A new float32 array of the shape of ``x``.

    Example:
        >>> import numpy as np, padfree
        >>> x = np.array([[1.0, 2.0, 3.0]], np.float32)
        >>> d = np.ones(3, np.float32), np.zeros(3, np.float32)
        >>> [round(v, 4) for v in padfree.layer_norm(x, *d)[0].tolist()]
        [-1.2247, 0.0, 1.2247]
    """
    x = _float32(x, "x")
    if x.ndim == 0:
        raise ValueError("x must have at least 1 dimension, got a 0-d array")
    d = x.shape[-1]
    gamma = _float32(gamma, "gamma")
    beta = _float32(beta, "beta")
    for name, value in (("gamma", gamma), ("beta", beta)):
        if value.shape != (d,):
            raise ValueError(
                f"{name} must have shape ({d},) (the last axis of x), got "
                f"{shape_str(value.shape)}"
            )
        _check_finite(value, name)
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a float, got {type(eps).__name__}")
    if not (float(eps) > 0.0 and np.isfinite(eps)):
        raise ValueError(f"eps must be a positive finite float, got {eps}")
    threads = check_num_threads(num_threads)
    residual_rows = None
    if residual is not None:
        residual = _float32(residual, "residual")
        if residual.shape != x.shape:
            raise ValueError(
                f"residual must have the shape of x {shape_str(x.shape)}, got "
                f"{shape_str(residual.shape)}"
            )
        residual_rows = _rows(residual)
    out = np.empty(x.shape, np.float32)
    if out.size:
        _core.layer_norm_f32(
            _rows(x), residual_rows, np.require(gamma, requirements="CA"),
            np.require(beta, requirements="CA"),
            float(eps), out.reshape(-1, d), threads,
        )
    return out
