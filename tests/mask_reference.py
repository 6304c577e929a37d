"""Structured attention masks (causal, sliding window) as dense boolean arrays, for the
float64 references in the tests. padfree itself never materialises these."""

from __future__ import annotations

import numpy as np


def structured_keep(length, causal=False, window=None):
    """(L, L) bool: True where query i may see key j under `causal` and `window`.

    `window` is (left, right); None on a side leaves that side unbounded.
    """
    i = np.arange(length)[:, None]
    j = np.arange(length)[None, :]
    keep = np.ones((length, length), bool)
    if causal:
        keep &= j <= i
    if window is not None:
        left, right = window
        if left is not None:
            keep &= j >= i - left
        if right is not None:
            keep &= j <= i + right
    return keep
