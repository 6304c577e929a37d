"""padfree.masked_softmax: softmax over one axis that skips what the mask removes."""

from __future__ import annotations

import numpy as np

from . import _core
from ._checks import as_float_array, check_num_threads, normalize_axis, shape_str

__all__ = ["masked_softmax"]


def masked_softmax(scores, mask=None, *, lengths=None, axis=-1, out=None, num_threads=None):
    """Softmax of ``scores`` along ``axis``, restricted to the positions that take part.

    Args:
        scores: float32 or float64 array. float32 runs the vectorised kernels; float64 is
            computed in float64 by the scalar kernel (never down-cast).
        mask: optional, broadcastable to ``scores.shape``. Boolean: True where a position
            takes part (the same convention as Hugging Face's ``attention_mask`` and
            PyTorch SDPA's boolean masks). Floating point: added to the scores (0 keeps,
            ``-inf`` removes; any other value shifts), cast to the scores' dtype. Integer
            masks are rejected as ambiguous; pass ``mask.astype(bool)``.
        lengths: optional integer array over the leading dimensions of ``scores`` (all
            dimensions but ``axis``, aligned from the left, each of size 1 or equal; missing
            trailing dimensions broadcast). Only the first ``n`` positions along ``axis``
            are read; the rest are written as zero without being read or computed.
        axis: the axis to normalise over.
        out: optional array of the same shape and dtype to write to. It may be ``scores``
            itself for in-place use.
        num_threads: OpenMP threads for this call; None uses OpenMP's default.

    Returns:
        An array of the shape and dtype of ``scores`` (``out`` if given). A row in which no
        position takes part (or all kept scores are ``-inf``) is all zeros, never NaN.
        A NaN or ``+inf`` among the scores a row reads (after adding a float mask) makes
        that row's read positions NaN and no other row; positions a boolean mask removes
        and positions past ``lengths`` stay exactly zero even then.

    Example:
        >>> import numpy as np, padfree
        >>> scores = np.random.default_rng(0).standard_normal((2, 4, 5)).astype(np.float32)
        >>> lengths = np.array([3, 5])               # per batch entry
        >>> p = padfree.masked_softmax(scores, lengths=lengths)
        >>> bool(np.allclose(p.sum(-1), 1)) and bool((p[0, :, 3:] == 0).all())
        True
    """
    scores = as_float_array(scores, "scores")
    if scores.ndim == 0:
        raise ValueError("scores must have at least 1 dimension, got a 0-d array")
    axis = normalize_axis(axis, scores.ndim)
    threads = check_num_threads(num_threads)
    dtype = scores.dtype

    keep, bias = _split_mask(mask, scores.shape, dtype)
    lengths_view = _lengths_view(lengths, scores.shape, axis)
    result = _check_out(out, scores)

    x = np.moveaxis(scores, axis, -1)
    if x.size and x.strides[-1] != x.itemsize or not x.flags.aligned:
        x = np.require(x, requirements="CA")
    keep_view = _row_view(keep, axis)
    bias_view = _row_view(bias, axis)
    y = np.moveaxis(result, axis, -1)
    target = y
    # The kernel may write a row in place of the same row of scores, but nothing else may
    # overlap the output: anything else goes through a temporary.
    inputs = [a for a in (keep_view, bias_view, lengths_view) if a is not None]
    if (
        (y.size and y.strides[-1] != y.itemsize)
        or not y.flags.aligned
        or (np.may_share_memory(y, x) and not _same_view(y, x))
        or any(np.may_share_memory(y, a) for a in inputs)
    ):
        target = np.empty(x.shape, dtype)

    if x.size:
        kernel = _core.masked_softmax_f32 if dtype == np.float32 else _core.masked_softmax_f64
        kernel(x, target, lengths_view, keep_view, bias_view, threads)
    if target is not y:
        y[...] = target
    return result


def _same_view(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.strides == b.strides
        and a.shape == b.shape
    )


def _split_mask(mask, shape, dtype):
    """Return (keep, bias): a uint8 keep mask or an additive mask, broadcast to `shape`."""
    if mask is None:
        return None, None
    mask = np.asarray(mask)
    if mask.dtype == np.bool_:
        keep, bias = mask.view(np.uint8), None
    elif mask.dtype.kind == "f":
        with np.errstate(over="ignore"):  # float64 min and the like become -inf: intended
            keep, bias = None, mask.astype(dtype, copy=False)
    else:
        raise TypeError(
            f"mask must be boolean (True = take part) or floating point (added to the scores), "
            f"got dtype {mask.dtype}; for a 0/1 integer mask pass mask.astype(bool)"
        )
    chosen = keep if keep is not None else bias
    try:
        chosen = np.broadcast_to(chosen, shape)
    except ValueError:
        raise ValueError(
            f"mask has shape {shape_str(mask.shape)}, which does not broadcast to the scores' "
            f"shape {shape_str(shape)}"
        ) from None
    return (chosen, None) if keep is not None else (None, chosen)


def _row_view(mask, axis):
    if mask is None:
        return None
    view = np.moveaxis(mask, axis, -1)
    if view.size and view.strides[-1] != view.itemsize or not view.flags.aligned:
        view = np.require(view, requirements="CA")
    return view


def _lengths_view(lengths, shape, axis):
    """Broadcast `lengths` (left-aligned) to the leading shape, as int64, range-checked."""
    if lengths is None:
        return None
    lengths = np.asarray(lengths)
    if lengths.dtype == np.bool_ or lengths.dtype.kind not in "iu":
        raise TypeError(f"lengths must be an integer array, got dtype {lengths.dtype}")
    lead = tuple(s for d, s in enumerate(shape) if d != axis)
    if lengths.ndim > len(lead):
        raise ValueError(
            f"lengths has {lengths.ndim} dimensions but scores has only {len(lead)} leading "
            f"dimensions {shape_str(lead)} besides axis {axis}"
        )
    padded = lengths.reshape(lengths.shape + (1,) * (len(lead) - lengths.ndim))
    try:
        view = np.broadcast_to(padded, lead)
    except ValueError:
        raise ValueError(
            f"lengths has shape {shape_str(lengths.shape)}, which does not match the leading "
            f"dimensions {shape_str(lead)} of scores (aligned from the left, each of size 1 or "
            f"equal)"
        ) from None
    limit = shape[axis]
    if lengths.size:
        low, high = int(lengths.min()), int(lengths.max())
        if low < 0 or high > limit:
            bad = low if low < 0 else high
            raise ValueError(
                f"lengths must lie in [0, {limit}] (the size of scores along axis {axis}), "
                f"got {bad}"
            )
    view = view.astype(np.int64, copy=False)
    return view if view.flags.aligned else view.copy()


def _check_out(out, scores):
    if out is None:
        return np.empty(scores.shape, scores.dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != scores.dtype:
        raise TypeError(f"out must have dtype {scores.dtype} like scores, got {out.dtype}")
    if out.shape != scores.shape:
        raise ValueError(
            f"out must have the shape of scores {shape_str(scores.shape)}, "
            f"got {shape_str(out.shape)}"
        )
    if not out.flags.writeable:
        raise ValueError("out must be a writeable array, got a read-only one")
    return out
