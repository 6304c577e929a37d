"""padfree.attention: scaled dot-product attention that skips padding entirely."""

from __future__ import annotations

import math
import operator

import numpy as np

from . import _core
from ._checks import as_float_array, check_num_threads, shape_str

__all__ = ["attention"]

# attn_mask entries are addressed with 32-bit offsets inside one (sequence, head) slice.
_MAX_MASKED_LENGTH = 46340


def attention(
    q,
    k,
    v,
    *,
    lengths=None,
    key_padding_mask=None,
    attn_mask=None,
    is_causal=False,
    window=None,
    scale=None,
    num_threads=None,
):
    """Scaled dot-product attention over the valid positions of a padded batch.

    ``out = softmax(scale * q @ kᵀ + masks) @ v`` computed per sequence and head over that
    sequence's valid keys only: padded positions are never read or computed, and neither
    are key blocks that ``is_causal`` or ``window`` exclude.

    Args:
        q, k, v: arrays of shape ``(B, H, L, Dh)`` (batch, heads, positions, head size),
            all of one dtype. float32 runs the vectorised kernels. float64 is accepted for
            convenience: it is rounded to float32, computed in float32 and returned as
            float64, so the result has float32 accuracy.
        lengths: optional integers, shape ``(B,)``: positions ``0 .. lengths[b]-1`` of
            sequence ``b`` are valid, the rest is padding.
        key_padding_mask: optional boolean array ``(B, L)``, **True where a position is
            padding** (PyTorch's convention, as the name says). Holes and left padding are
            fine: the valid positions keep their original indices for ``attn_mask``,
            ``is_causal`` and ``window``. Combined with ``lengths`` a position is valid only
            if both say so.
        attn_mask: optional mask indexed ``[..., query position, key position]`` by
            original positions, of shape ``(L, L)``, ``(B, L, L)``, ``(B*H, L, L)`` or
            ``(B, H, L, L)`` (a 1 in place of B or H broadcasts). Boolean: True where a
            query may attend to a key (SDPA's convention). Floating point: added to the
            scaled scores (``-inf`` removes a key). It is read in place, never expanded.
        is_causal: query ``i`` sees only keys at positions ``j <= i``.
        window: optional ``(left, right)``: query ``i`` sees keys ``i - left <= j <= i +
            right``; either bound may be None (unbounded on that side).
        scale: factor on ``q @ kᵀ``; default ``1 / sqrt(Dh)``.
        num_threads: OpenMP threads for this call; None uses OpenMP's default.

    Returns:
        Array of the shape and dtype of ``q``. Rows of padded query positions are exactly
        zero, and so are rows of queries that have no key left after masking (never NaN).
        A sequence's result does not depend on the rest of the batch or the thread count.

    Example:
        >>> import numpy as np, padfree
        >>> rng = np.random.default_rng(0)
        >>> q, k, v = rng.standard_normal((3, 2, 4, 6, 8)).astype(np.float32)
        >>> out = padfree.attention(q, k, v, lengths=[6, 3], is_causal=True)
        >>> out.shape, bool((out[1, :, 3:] == 0).all())
        ((2, 4, 6, 8), True)
    """
    q, k, v = _check_qkv(q, k, v)
    dtype = q.dtype
    batch, heads, length, head_dim = q.shape
    valid, counts, positions = _valid_positions(lengths, key_padding_mask, batch, length)
    keep, bias = _mask_views(attn_mask, batch, heads, length)
    window_left, window_right = _check_window(window)
    if not isinstance(is_causal, (bool, np.bool_)):
        raise TypeError(f"is_causal must be a bool, got {type(is_causal).__name__}")
    scale = _check_scale(scale, head_dim)
    threads = check_num_threads(num_threads)

    tokens = int(counts.sum())
    if tokens == 0 or heads * head_dim == 0:
        return np.zeros(q.shape, q.dtype)
    masks = (keep, bias, bool(is_causal), window_left, window_right, threads)

    if positions is None:
        # Suffix padding: the kernels read q, k and v in place and write only the valid rows
        # of an output that np.zeros already zeroed (often as fresh zero pages).
        q, k, v = _same_layout_float32(q, k, v)
        out = np.zeros(q.shape, np.float32)
        _core.attention_padded_f32(q, k, v, out, counts, scale, *masks)
    else:
        out = _attention_packed(q, k, v, valid, counts, positions, scale, masks)
    return out.astype(dtype, copy=False)


def _same_layout_float32(q, k, v):
    """q, k, v as float32 with one set of strides and a contiguous last axis."""
    arrays = [a.astype(np.float32, copy=False) for a in (q, k, v)]
    strides = arrays[0].strides
    if any(a.strides != strides or not a.flags.aligned for a in arrays) or (
        arrays[0].shape[3] > 1 and strides[3] != 4
    ):
        arrays = [np.require(a, requirements="CA") for a in arrays]
    return arrays


def _attention_packed(q, k, v, valid, counts, positions, scale, masks):
    """Holes in the padding: gather the valid tokens into one (T, 3 * H * Dh) array."""
    batch, heads, length, head_dim = q.shape
    tokens, width = int(counts.sum()), heads * head_dim
    packed = np.empty((tokens, 3, heads, head_dim), np.float32)
    for index, source in enumerate((q, k, v)):
        packed[:, index] = source.transpose(0, 2, 1, 3)[valid]
    packed = packed.reshape(tokens, 3 * width)
    cu_seqlens = np.zeros(batch + 1, np.int64)
    np.cumsum(counts, out=cu_seqlens[1:])

    result = _core.attention_packed_f32(
        packed[:, :width],
        packed[:, width : 2 * width],
        packed[:, 2 * width :],
        cu_seqlens,
        positions,
        heads,
        head_dim,
        scale,
        *masks,
    )
    out = np.zeros((batch, heads, length, head_dim), np.float32)
    out.transpose(0, 2, 1, 3)[valid] = result.reshape(tokens, heads, head_dim)
    return out


def _check_qkv(q, k, v):
    q = as_float_array(q, "q")
    k = as_float_array(k, "k")
    v = as_float_array(v, "v")
    if q.ndim != 4:
        raise ValueError(f"q must have shape (B, H, L, Dh), got {q.ndim} dimensions "
                         f"{shape_str(q.shape)}")
    for name, array in (("k", k), ("v", v)):
        if array.shape != q.shape:
            raise ValueError(
                f"{name} must have the shape of q {shape_str(q.shape)}, "
                f"got {shape_str(array.shape)}"
            )
        if array.dtype != q.dtype:
            raise TypeError(f"{name} must have the dtype of q ({q.dtype}), got {array.dtype}")
    return q, k, v


def _valid_positions(lengths, key_padding_mask, batch, length):
    """Return (valid (B, L) bool, counts (B,), positions int64 or None if all prefixes)."""
    prefix = np.arange(length)[None, :]
    if lengths is None:
        counts = np.full(batch, length, np.int64)
    else:
        counts = _check_lengths(lengths, batch, length)
    valid = prefix < counts[:, None]
    if key_padding_mask is None:
        return valid, counts, None

    padding = np.asarray(key_padding_mask)
    if padding.dtype != np.bool_:
        raise TypeError(
            f"key_padding_mask must be boolean (True = padding), got dtype {padding.dtype}; "
            f"for a 0/1 mask pass mask.astype(bool)"
        )
    if padding.shape != (batch, length):
        raise ValueError(
            f"key_padding_mask must have shape (B, L) = {shape_str((batch, length))}, "
            f"got {shape_str(padding.shape)}"
        )
    valid &= ~padding
    counts = valid.sum(axis=1, dtype=np.int64)
    if np.array_equal(valid, prefix < counts[:, None]):
        return valid, counts, None
    positions = np.nonzero(valid)[1].astype(np.int64)
    return valid, counts, positions


def _check_lengths(lengths, batch, length):
    lengths = np.asarray(lengths)
    if lengths.dtype == np.bool_ or lengths.dtype.kind not in "iu":
        raise TypeError(f"lengths must be an integer array, got dtype {lengths.dtype}")
    if lengths.shape != (batch,):
        raise ValueError(
            f"lengths must have shape (B,) = ({batch},), got {shape_str(lengths.shape)}"
        )
    if lengths.size and (lengths.min() < 0 or lengths.max() > length):
        bad = lengths.min() if lengths.min() < 0 else lengths.max()
        raise ValueError(f"lengths must lie in [0, {length}] (L of q), got {int(bad)}")
    return lengths.astype(np.int64)


def _mask_views(attn_mask, batch, heads, length):
    """Return (keep, bias): attn_mask as a (B, H, L, L) view (stride 0 where broadcast)."""
    if attn_mask is None:
        return None, None
    mask = np.asarray(attn_mask)
    if mask.dtype == np.bool_:
        is_bool = True
    elif mask.dtype.kind == "f":
        is_bool = False
        with np.errstate(over="ignore"):  # float64 min and the like become -inf: intended
            mask = mask.astype(np.float32, copy=False)
    else:
        raise TypeError(
            f"attn_mask must be boolean (True = take part) or floating point (added to the "
            f"scores), got dtype {mask.dtype}; for a 0/1 mask pass mask.astype(bool)"
        )
    if length > _MAX_MASKED_LENGTH:
        raise ValueError(f"attn_mask supports L up to {_MAX_MASKED_LENGTH}, got L={length}")

    four_d = _as_four_d(mask, batch, heads, length)
    query_stride = abs(four_d.strides[2]) // four_d.itemsize
    if (
        (four_d.shape[-1] > 1 and four_d.strides[-1] != four_d.itemsize)
        or not four_d.flags.aligned
        or (length - 1) * query_stride + length >= 2**31
    ):
        four_d = np.require(four_d, requirements="CA")
    view = np.broadcast_to(four_d, (batch, heads, length, length))
    if is_bool:
        return view.view(np.uint8), None
    return None, view


def _as_four_d(mask, batch, heads, length):
    expected = (
        f"(L, L), (B, L, L), (B*H, L, L) or (B, H, L, L) with B={batch}, H={heads}, L={length}"
    )
    if mask.ndim < 2 or mask.shape[-2:] != (length, length):
        raise ValueError(f"attn_mask must have shape {expected}, got {shape_str(mask.shape)}")
    if mask.ndim == 2:
        return mask[None, None]
    if mask.ndim == 3:
        first = mask.shape[0]
        if first in (batch, 1):
            return mask[:, None]
        if first == batch * heads:
            return mask.reshape(batch, heads, length, length)
    if mask.ndim == 4 and mask.shape[0] in (batch, 1) and mask.shape[1] in (heads, 1):
        return mask
    raise ValueError(f"attn_mask must have shape {expected}, got {shape_str(mask.shape)}")


def _check_window(window):
    if window is None:
        return -1, -1
    try:
        left, right = window
    except (TypeError, ValueError):
        raise TypeError(f"window must be a pair (left, right), got {window!r}") from None
    bounds = []
    for name, bound in (("left", left), ("right", right)):
        if bound is None:
            bounds.append(-1)
            continue
        if isinstance(bound, (bool, np.bool_)):  # True is not a distance of 1
            raise TypeError(f"window {name} bound must be a non-negative int or None, got bool")
        try:
            value = operator.index(bound)
        except TypeError:
            raise TypeError(
                f"window {name} bound must be a non-negative int or None, "
                f"got {type(bound).__name__}"
            ) from None
        if value < 0:
            raise ValueError(f"window {name} bound must be a non-negative int or None, got {value}")
        bounds.append(min(value, 2**62))  # beyond any length; keeps C++ arithmetic in range
    return bounds[0], bounds[1]


def _check_scale(scale, head_dim):
    if scale is None:
        return 1.0 / math.sqrt(head_dim) if head_dim else 1.0
    if isinstance(scale, (bool, np.bool_)):
        raise TypeError("scale must be a real number or None, got bool")
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise TypeError(
            f"scale must be a real number or None, got {type(scale).__name__}"
        ) from None
    if not math.isfinite(value):
        raise ValueError(f"scale must be finite, got {value}")
    return value
