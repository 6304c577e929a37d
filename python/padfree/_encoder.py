"""padfree.Encoder and padfree.EncoderLayer: a Transformer encoder run on valid tokens only.

Weights use PyTorch's ``nn.TransformerEncoder`` state-dict names and layouts, so a model moves
over with ``Encoder.from_torch(module)`` or, without torch, ``Encoder.from_state_dict``.
"""

from __future__ import annotations

import operator
import re

import numpy as np

from . import _core
from ._checks import as_float_array, check_num_threads, shape_str

__all__ = ["Encoder", "EncoderLayer"]

# Activation names accepted by from_state_dict, mapped to the C++ enum padfree::Activation.
_ACTIVATIONS = {"relu": 1, "gelu": 2, "gelu_tanh": 3}

# State-dict key of one layer (without the "layers.{i}." prefix) -> (C++ name, shape as a
# function of d_model D and dim_feedforward F).
_LAYER_KEYS = {
    "self_attn.in_proj_weight": ("in_proj_weight", lambda d, f: (3 * d, d)),
    "self_attn.in_proj_bias": ("in_proj_bias", lambda d, f: (3 * d,)),
    "self_attn.out_proj.weight": ("out_proj_weight", lambda d, f: (d, d)),
    "self_attn.out_proj.bias": ("out_proj_bias", lambda d, f: (d,)),
    "linear1.weight": ("linear1_weight", lambda d, f: (f, d)),
    "linear1.bias": ("linear1_bias", lambda d, f: (f,)),
    "linear2.weight": ("linear2_weight", lambda d, f: (d, f)),
    "linear2.bias": ("linear2_bias", lambda d, f: (d,)),
    "norm1.weight": ("norm1_weight", lambda d, f: (d,)),
    "norm1.bias": ("norm1_bias", lambda d, f: (d,)),
    "norm2.weight": ("norm2_weight", lambda d, f: (d,)),
    "norm2.bias": ("norm2_bias", lambda d, f: (d,)),
}
_FINAL_NORM_KEYS = ("norm.weight", "norm.bias")
# The attention kernels address a mask inside one (sequence, head) slice with 31-bit offsets
# (attention.h): query_position * L + key_position must stay below 2**31.
_MAX_MASKED_LENGTH = 46340
_LAYER_PREFIX = re.compile(r"^layers\.(\d+)\.(.+)$")


class Encoder:
    """A stack of Transformer encoder layers computed on the valid tokens of a batch.

    Build one with :meth:`from_state_dict` or :meth:`from_torch`. Calling it runs every
    layer in eval mode (no dropout) on the valid tokens only and returns a padded batch
    with exact zeros at padded positions.

    The object is immutable and thread-safe: the GIL is released for all C++ work and each
    call has its own scratch, so one encoder may serve many Python threads at once. It can
    be pickled (weights included) to ship it to worker processes.

    Example:
        >>> import numpy as np, padfree
        >>> rng = np.random.default_rng(0)
        >>> D, F = 16, 32
        >>> w = lambda *s: (rng.standard_normal(s) * 0.1).astype(np.float32)
        >>> state = {"self_attn.in_proj_weight": w(3 * D, D), "self_attn.in_proj_bias": w(3 * D),
        ...          "self_attn.out_proj.weight": w(D, D), "self_attn.out_proj.bias": w(D),
        ...          "linear1.weight": w(F, D), "linear1.bias": w(F),
        ...          "linear2.weight": w(D, F), "linear2.bias": w(D),
        ...          "norm1.weight": 1 + w(D), "norm1.bias": w(D),
        ...          "norm2.weight": 1 + w(D), "norm2.bias": w(D)}
        >>> layer = padfree.EncoderLayer.from_state_dict(state, num_heads=4)
        >>> x = rng.standard_normal((2, 5, D)).astype(np.float32)
        >>> y = layer(x, lengths=[3, 5])
        >>> y.shape, bool((y[0, 3:] == 0).all())
        ((2, 5, 16), True)
    """

    _prefixed = True  # state-dict keys carry "layers.{i}." (False for EncoderLayer)

    def __init__(self, *args, **kwargs):
        raise TypeError(
            f"construct a padfree.{type(self).__name__} with "
            f"{type(self).__name__}.from_state_dict(...) or {type(self).__name__}.from_torch(...)"
        )

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_state_dict(
        cls,
        state_dict,
        *,
        num_heads,
        norm_first=False,
        activation="relu",
        layer_norm_eps=1e-5,
        final_norm_eps=None,
        num_threads=None,
    ):
        """Build an encoder from PyTorch ``nn.TransformerEncoder`` state-dict entries.

        Args:
            state_dict: mapping from key to array (NumPy arrays, or anything
                ``numpy.asarray`` accepts; torch tensors are detached and copied). Keys are
                ``layers.{i}.self_attn.in_proj_weight`` (3D, D), ``...in_proj_bias`` (3D),
                ``layers.{i}.self_attn.out_proj.weight`` (D, D) and ``.bias`` (D),
                ``layers.{i}.linear1.weight`` (F, D) and ``.bias`` (F),
                ``layers.{i}.linear2.weight`` (D, F) and ``.bias`` (D),
                ``layers.{i}.norm1.weight/.bias`` and ``layers.{i}.norm2.weight/.bias`` (D),
                and optionally the final ``norm.weight`` and ``norm.bias`` (D). For
                :class:`EncoderLayer` the same keys come without the ``layers.{i}.`` prefix
                and there is no final norm. Layers are numbered 0, 1, ... without gaps.
            num_heads: attention heads; must divide D.
            norm_first: pre-norm layers (LayerNorm before attention and feed-forward), as
                ``nn.TransformerEncoderLayer(norm_first=True)``.
            activation: ``"relu"``, ``"gelu"`` (exact, erf) or ``"gelu_tanh"``.
            layer_norm_eps: epsilon of every layer's LayerNorms.
            final_norm_eps: epsilon of the final norm; None means ``layer_norm_eps``.
            num_threads: default OpenMP threads for calls; None uses OpenMP's default.

        Raises:
            ValueError: a key is unknown or missing, an array has the wrong shape or holds
                NaN or infinity (the message names the key), or a setting is out of range.
            TypeError: a weight is not a floating-point array, or a setting has the wrong type.
        """
        heads = _positive_int(num_heads, "num_heads")
        if not isinstance(norm_first, (bool, np.bool_)):
            raise TypeError(f"norm_first must be a bool, got {type(norm_first).__name__}")
        if not isinstance(activation, str) or activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {', '.join(map(repr, _ACTIVATIONS))}, "
                f"got {activation!r}"
            )
        eps = _positive_float(layer_norm_eps, "layer_norm_eps")
        final_eps = eps if final_norm_eps is None else _positive_float(
            final_norm_eps, "final_norm_eps")
        threads = check_num_threads(num_threads)

        layers, final = cls._split_state(state_dict)
        d_model, dim_ff = _infer_sizes(layers[0], cls._key(0, "self_attn.in_proj_weight"),
                                       cls._key(0, "linear1.weight"))
        if d_model % heads:
            raise ValueError(f"num_heads={heads} must divide d_model={d_model}")
        core_layers = [
            {name: _weight(layer[key], cls._key(i, key), shape(d_model, dim_ff))
             for key, (name, shape) in _LAYER_KEYS.items()}
            for i, layer in enumerate(layers)
        ]
        final_arrays = None
        if final is not None:
            final_arrays = [_weight(final[k], k, (d_model,)) for k in _FINAL_NORM_KEYS]

        core = _core.EncoderCore(
            d_model, heads, dim_ff, bool(norm_first), _ACTIVATIONS[activation], eps, final_eps,
            core_layers, *(final_arrays or (None, None)),
        )
        config = dict(num_heads=heads, norm_first=bool(norm_first), activation=activation,
                      layer_norm_eps=eps, final_norm_eps=final_eps)
        return cls._wrap(core, config, d_model, dim_ff, final is not None, threads)

    @classmethod
    def from_torch(cls, module, *, num_threads=None):
        """Copy the weights and settings of a PyTorch encoder.

        Args:
            module: ``torch.nn.TransformerEncoder`` or ``torch.nn.TransformerEncoderLayer``
                (:class:`EncoderLayer` takes only the latter). Its ``batch_first`` setting
                does not matter: padfree is always batch-first. Dropout is ignored (padfree
                computes eval mode). The activation must be ReLU or GELU (exact or tanh).
            num_threads: default OpenMP threads for calls; None uses OpenMP's default.

        Only this method imports torch.
        """
        from ._torch_import import encoder_state_from_torch

        state, settings = encoder_state_from_torch(module, prefixed=cls._prefixed)
        return cls.from_state_dict(state, num_threads=num_threads, **settings)

    @classmethod
    def _wrap(cls, core, config, d_model, dim_ff, has_final_norm, threads):
        self = object.__new__(cls)
        self._core = core
        self._config = config
        self._d_model = d_model
        self._dim_feedforward = dim_ff
        self._has_final_norm = has_final_norm
        self._num_threads = threads
        return self

    @classmethod
    def _key(cls, index, key):
        return f"layers.{index}.{key}" if cls._prefixed else key

    @classmethod
    def _split_state(cls, state_dict):
        """Group state-dict entries by layer; unknown keys are errors."""
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        layers, final = {}, {}
        for key in state_dict.keys():
            if not isinstance(key, str):
                raise TypeError(f"state_dict keys must be str, got {key!r}")
            if cls._prefixed:
                match = _LAYER_PREFIX.match(key)
                if match and match.group(2) in _LAYER_KEYS:
                    layers.setdefault(int(match.group(1)), {})[match.group(2)] = state_dict[key]
                    continue
                if key in _FINAL_NORM_KEYS:
                    final[key] = state_dict[key]
                    continue
            elif key in _LAYER_KEYS:
                layers.setdefault(0, {})[key] = state_dict[key]
                continue
            raise ValueError(f"state_dict has an unknown key {key!r}")
        if not layers:
            raise ValueError("state_dict has no encoder layer weights")
        count = max(layers) + 1
        for i in range(count):
            for key in _LAYER_KEYS:
                if key not in layers.get(i, {}):
                    raise ValueError(f"state_dict is missing the key {cls._key(i, key)!r}")
        if final and len(final) != 2:
            missing = next(k for k in _FINAL_NORM_KEYS if k not in final)
            raise ValueError(f"state_dict is missing the key {missing!r}")
        return [layers[i] for i in range(count)], (final or None)

    # ------------------------------------------------------------------ properties

    @property
    def d_model(self) -> int:
        return self._d_model

    @property
    def num_heads(self) -> int:
        return self._config["num_heads"]

    @property
    def dim_feedforward(self) -> int:
        return self._dim_feedforward

    @property
    def num_layers(self) -> int:
        return self._core.num_layers

    @property
    def norm_first(self) -> bool:
        return self._config["norm_first"]

    @property
    def activation(self) -> str:
        return self._config["activation"]

    @property
    def layer_norm_eps(self) -> float:
        return self._config["layer_norm_eps"]

    @property
    def has_final_norm(self) -> bool:
        return self._has_final_norm

    @property
    def num_threads(self):
        """Default OpenMP threads of a call (None: OpenMP's default)."""
        return self._num_threads or None

    def __repr__(self) -> str:
        return (
            f"padfree.{type(self).__name__}(num_layers={self.num_layers}, "
            f"d_model={self.d_model}, num_heads={self.num_heads}, "
            f"dim_feedforward={self.dim_feedforward}, norm_first={self.norm_first}, "
            f"activation={self.activation!r}, final_norm={self.has_final_norm})"
        )

    # ------------------------------------------------------------------ weights, pickling

    def state_dict(self) -> dict:
        """The weights as float32 NumPy arrays under PyTorch's state-dict names."""
        state = {}
        for i in range(self.num_layers):
            arrays = self._core.layer_state(i)
            for key, (name, _) in _LAYER_KEYS.items():
                state[self._key(i, key)] = arrays[name]
        final = self._core.final_norm_state()
        if final is not None:
            state.update(zip(_FINAL_NORM_KEYS, final))
        return state

    def __reduce__(self):
        config = dict(self._config, num_threads=self.num_threads)
        return (_rebuild, (type(self), self.state_dict(), config))

    # ------------------------------------------------------------------ calls

    def __call__(
        self,
        x,
        *,
        lengths=None,
        src_key_padding_mask=None,
        attention_mask=None,
        src_mask=None,
        is_causal=False,
        window=None,
        num_threads=None,
    ):
        """Run the encoder on a padded batch.

        Args:
            x: (B, L, D) float32 (float64 is rounded to float32), batch-first.
            lengths: (B,) integers; sequence b is positions ``[0, lengths[b])``.
            src_key_padding_mask: (B, L) boolean, True where a position is PADDING
                (PyTorch's convention). Padding may sit anywhere (holes are fine).
            attention_mask: (B, L) boolean or 0/1 integers, True/1 where a position is
                REAL (Hugging Face's convention).
                At most one of ``lengths``, ``src_key_padding_mask`` and ``attention_mask``
                may be given; with none, every position is real.
            src_mask: attention mask indexed by (query position, key position), of shape
                (L, L), (B, L, L), (B * num_heads, L, L) or (B, num_heads, L, L). Boolean:
                True where the key TAKES PART (SDPA's convention; the opposite of
                ``nn.TransformerEncoder``'s boolean src_mask, so pass ``~mask`` from
                there). Floating point: added to the scaled scores (0 keeps, -inf removes).
            is_causal: query i sees only keys j <= i (original positions). Combines with
                ``src_mask``; never materialised.
            window: None, an int w (keys within w positions on either side), or a pair
                (left, right) where None leaves that side unbounded.
            num_threads: OpenMP threads for this call; None uses the encoder's setting.

        Returns:
            (B, L, D) float32 with exact zeros at padded positions. A query whose keys are
            all masked gets a zero attention output (never NaN).
        """
        x = _as_batch(x, self._d_model)
        batch, length = x.shape[:2]
        cu_seqlens, positions = _key_padding(
            batch, length, lengths, src_key_padding_mask, attention_mask)
        mask = _attention_masks(src_mask, is_causal, window, batch, length, self.num_heads)
        threads = self._call_threads(num_threads)
        return self._core.forward_padded(x, cu_seqlens, positions, mask, threads)

    def forward_packed(self, x_packed, cu_seqlens, *, is_causal=False, window=None,
                       num_threads=None):
        """Run the encoder on tokens that are already packed; return packed output.

        Args:
            x_packed: (T, D) float32: the tokens of sequence b are rows
                ``cu_seqlens[b]:cu_seqlens[b + 1]``.
            cu_seqlens: (B + 1,) non-decreasing integers from 0 to T.
            is_causal, window: as in :meth:`__call__` (positions count from each
                sequence's first token).
            num_threads: OpenMP threads for this call; None uses the encoder's setting.

        Returns:
            (T, D) float32, the same packing as the input.
        """
        x = as_float_array(x_packed, "x_packed")
        if x.ndim != 2 or x.shape[1] != self._d_model:
            raise ValueError(
                f"x_packed must have shape (T, {self._d_model}), got {shape_str(x.shape)}")
        x = np.require(x, np.float32, "CA")
        cu = _cu_seqlens(cu_seqlens, x.shape[0])
        mask = _attention_masks(None, is_causal, window, len(cu) - 1, 0, self.num_heads)
        return self._core.forward_packed(x, cu, None, mask, self._call_threads(num_threads))

    def _call_threads(self, num_threads):
        return self._num_threads if num_threads is None else check_num_threads(num_threads)


class EncoderLayer(Encoder):
    """One Transformer encoder layer (``nn.TransformerEncoderLayer``).

    The same as a one-layer :class:`Encoder` without final norm, whose state-dict keys carry
    no ``layers.{i}.`` prefix (``self_attn.in_proj_weight``, ``linear1.weight``, ...).
    Called like :class:`Encoder`: ``layer(x, lengths=...)`` with ``x`` of shape (B, L, D).

    Example (PyTorch needed only for the import):
        >>> import torch, padfree                                      # doctest: +SKIP
        >>> torch_layer = torch.nn.TransformerEncoderLayer(16, 4, 32)  # doctest: +SKIP
        >>> layer = padfree.EncoderLayer.from_torch(torch_layer.eval())  # doctest: +SKIP
        >>> layer(x, lengths=[3, 5]).shape                              # doctest: +SKIP
        (2, 5, 16)
    """

    _prefixed = False


def _rebuild(cls, state, config):
    return cls.from_state_dict(state, **config)


# ---------------------------------------------------------------------- argument helpers


def _positive_int(value, name):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a positive int, got bool")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__}") from None
    if number < 1:
        raise ValueError(f"{name} must be a positive int, got {number}")
    return number


def _positive_float(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    number = float(value)
    if not (np.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a positive finite float, got {number}")
    return number


def _to_numpy(value):
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


def _infer_sizes(layer, in_proj_key, linear1_key):
    in_proj = _to_numpy(layer["self_attn.in_proj_weight"])
    if in_proj.ndim != 2 or in_proj.shape[0] != 3 * in_proj.shape[1] or in_proj.shape[1] < 1:
        raise ValueError(
            f"{in_proj_key} must have shape (3 * d_model, d_model), got {shape_str(in_proj.shape)}"
        )
    linear1 = _to_numpy(layer["linear1.weight"])
    if linear1.ndim != 2 or linear1.shape[0] < 1:
        raise ValueError(
            f"{linear1_key} must have shape (dim_feedforward, {in_proj.shape[1]}), "
            f"got {shape_str(linear1.shape)}"
        )
    return int(in_proj.shape[1]), int(linear1.shape[0])


def _weight(value, key, shape):
    array = _to_numpy(value)
    if array.dtype.kind != "f":
        raise TypeError(f"{key} must be a floating-point array, got dtype {array.dtype}")
    if array.shape != shape:
        raise ValueError(f"{key} must have shape {shape_str(shape)}, got {shape_str(array.shape)}")
    with np.errstate(over="ignore"):  # values beyond float32's range are reported below
        array = np.require(array, np.float32, "CA")
    if not np.isfinite(array).all():
        raise ValueError(f"{key} holds NaN or infinity (as float32)")
    return array


def _as_batch(x, d_model):
    x = as_float_array(x, "x")
    if x.ndim != 3 or x.shape[2] != d_model:
        raise ValueError(f"x must have shape (B, L, {d_model}), got {shape_str(x.shape)}")
    return np.require(x, np.float32, "CA")


def _key_padding(batch, length, lengths, src_key_padding_mask, attention_mask):
    """Reduce the key-padding arguments to (cu_seqlens, positions or None)."""
    given = [name for name, value in (("lengths", lengths),
                                      ("src_key_padding_mask", src_key_padding_mask),
                                      ("attention_mask", attention_mask)) if value is not None]
    if len(given) > 1:
        raise ValueError(f"give at most one of lengths, src_key_padding_mask and "
                         f"attention_mask, got {' and '.join(given)}")
    if lengths is not None:
        counts = _lengths(lengths, batch, length)
        return _offsets(counts), None
    if not given:
        return np.arange(batch + 1, dtype=np.int64) * length, None
    if src_key_padding_mask is not None:
        keep = ~_padding_mask(src_key_padding_mask, "src_key_padding_mask", batch, length)
    else:
        keep = _padding_mask(attention_mask, "attention_mask", batch, length)
    counts = keep.sum(axis=1, dtype=np.int64)
    prefix = np.arange(length)[None, :] < counts[:, None]
    if np.array_equal(keep, prefix):
        return _offsets(counts), None
    positions = np.nonzero(keep)[1].astype(np.int64)
    return _offsets(counts), positions


def _lengths(lengths, batch, length):
    array = np.asarray(lengths)
    if array.dtype == np.bool_ or array.dtype.kind not in "iu":
        raise TypeError(f"lengths must be an integer array, got dtype {array.dtype}")
    if array.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},) for a batch of {batch}, "
                         f"got {shape_str(array.shape)}")
    if array.size and (array.min() < 0 or array.max() > length):
        bad = int(array.min()) if array.min() < 0 else int(array.max())
        raise ValueError(f"lengths must lie in [0, {length}] (the size of x along axis 1), "
                         f"got {bad}")
    return array.astype(np.int64)


def _padding_mask(mask, name, batch, length):
    array = np.asarray(mask)
    if array.dtype.kind in "iu":
        if array.size and not np.isin(array, (0, 1)).all():
            raise ValueError(f"{name} as integers must hold only 0 and 1")
        array = array.astype(bool)
    elif array.dtype != np.bool_:
        raise TypeError(f"{name} must be boolean (or 0/1 integers), got dtype {array.dtype}")
    if array.shape != (batch, length):
        raise ValueError(f"{name} must have shape ({batch}, {length}) like x's first two axes, "
                         f"got {shape_str(array.shape)}")
    return array


def _offsets(counts):
    cu = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=cu[1:])
    return cu


def _cu_seqlens(cu_seqlens, tokens):
    array = np.asarray(cu_seqlens)
    if array.dtype == np.bool_ or array.dtype.kind not in "iu":
        raise TypeError(f"cu_seqlens must be an integer array, got dtype {array.dtype}")
    if array.ndim != 1 or array.size < 1:
        raise ValueError(f"cu_seqlens must have shape (B + 1,), got {shape_str(array.shape)}")
    # Range first, then order in int64: np.diff of unsigned offsets wraps instead of going
    # negative, so a huge uint64 entry would otherwise pass and become negative in C++.
    if (array.min() < 0 or array.max() > tokens or array[0] != 0 or array[-1] != tokens
            or (np.diff(array.astype(np.int64)) < 0).any()):
        raise ValueError(f"cu_seqlens must rise from 0 to {tokens} (the rows of x_packed) "
                         f"without decreasing, got {array.tolist()}")
    return np.require(array, np.int64, "CA")


def _attention_masks(src_mask, is_causal, window, batch, length, heads):
    mask = _core.EncoderMask()
    if not isinstance(is_causal, (bool, np.bool_)):
        raise TypeError(f"is_causal must be a bool, got {type(is_causal).__name__}")
    mask.causal = bool(is_causal)
    mask.window_left, mask.window_right = _window(window)
    if src_mask is None:
        return mask
    if length > _MAX_MASKED_LENGTH:
        raise ValueError(f"src_mask supports L up to {_MAX_MASKED_LENGTH}, got L={length}")
    array = np.asarray(src_mask)
    if array.dtype == np.bool_:
        array = np.require(array, requirements="CA").view(np.uint8)
    elif array.dtype.kind == "f":
        with np.errstate(over="ignore"):  # float64 min and the like become -inf: intended
            array = np.require(array, np.float32, "CA")
    else:
        raise TypeError(f"src_mask must be boolean (True = take part) or floating point (added "
                        f"to the scores), got dtype {array.dtype}; for 0/1 integers pass "
                        f"src_mask.astype(bool)")
    square = length * length
    shapes = {
        (length, length): (0, 0),
        (batch, length, length): (square, 0),
        (batch * heads, length, length): (heads * square, square),
        (batch, heads, length, length): (heads * square, square),
    }
    if array.shape not in shapes:
        raise ValueError(
            f"src_mask must have shape ({length}, {length}), ({batch}, {length}, {length}), "
            f"({batch * heads}, {length}, {length}) or ({batch}, {heads}, {length}, {length}), "
            f"got {shape_str(array.shape)}"
        )
    mask.stride_batch, mask.stride_head = shapes[array.shape]
    mask.stride_query = length
    if array.dtype == np.uint8:
        mask.keep = array
    else:
        mask.bias = array
    return mask


def _window(window):
    if window is None:
        return -1, -1
    if isinstance(window, tuple) and len(window) == 2:
        left, right = window
    elif isinstance(window, (list, tuple)):
        raise ValueError(f"window must be an int or a pair (left, right), got {window!r}")
    else:
        left = right = window
    bounds = []
    for side, value in (("left", left), ("right", right)):
        if value is None:
            bounds.append(-1)
            continue
        if isinstance(value, (bool, np.bool_)):
            raise TypeError(f"window ({side}) must be a non-negative int or None, got bool")
        try:
            number = operator.index(value)
        except TypeError:
            raise TypeError(f"window ({side}) must be a non-negative int or None, "
                            f"got {type(value).__name__}") from None
        if number < 0:
            raise ValueError(f"window ({side}) must be a non-negative int or None, got {number}")
        bounds.append(min(number, 2**62))  # beyond any length; fits C++'s int64
    return tuple(bounds)
