"""Argument checks shared by every public function.

Each check raises TypeError (wrong kind of thing) or ValueError (right kind, wrong value or
shape) with a message naming the argument, what was expected and what arrived.
"""

from __future__ import annotations

import operator

import numpy as np

__all__ = [
    "as_float_array",
    "check_num_threads",
    "normalize_axis",
    "shape_str",
]


# More OpenMP threads than this is a mistake, not a request: libgomp would try to start
# them all (and C++ takes an int).
MAX_THREADS = 4096


def shape_str(shape) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def as_float_array(value, name: str, dtypes=(np.float32, np.float64)) -> np.ndarray:
    """Return `value` as an ndarray whose dtype is one of `dtypes` (no casting)."""
    array = np.asarray(value)
    if array.dtype.kind == "f" and not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if array.dtype not in [np.dtype(d) for d in dtypes]:
        wanted = " or ".join(np.dtype(d).name for d in dtypes)
        raise TypeError(f"{name} must have dtype {wanted}, got {array.dtype}")
    return array


def normalize_axis(axis, ndim: int, name: str = "axis") -> int:
    try:
        index = operator.index(axis)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(axis).__name__}") from None
    if not -ndim <= index < ndim:
        raise ValueError(f"{name}={index} is out of range for an array with {ndim} dimensions")
    return index % ndim


def check_num_threads(num_threads) -> int:
    """Return the thread count for C++ (0 = OpenMP's default)."""
    if num_threads is None:
        return 0
    if isinstance(num_threads, bool):
        raise TypeError("num_threads must be a positive int or None, got bool")
    try:
        count = operator.index(num_threads)
    except TypeError:
        raise TypeError(
            f"num_threads must be a positive int or None, got {type(num_threads).__name__}"
        ) from None
    if count < 1:
        raise ValueError(f"num_threads must be a positive int or None, got {count}")
    if count > MAX_THREADS:
        raise ValueError(f"num_threads must be at most {MAX_THREADS}, got {count}")
    return count
