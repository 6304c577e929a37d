"""padfree.layer_norm: float64 reference, tails, ISAs, threads, fused residual, errors."""

from __future__ import annotations

import numpy as np
import pytest

import padfree

EPS32 = 2.0**-24


def layer_norm_ref(x, gamma, beta, eps, residual=None):
    """float64 LayerNorm, the normalised rows, and each row's max |z| / std."""
    z = x.astype(np.float64)
    if residual is not None:
        z = z + residual
    mean = z.mean(-1, keepdims=True)
    std = np.sqrt(((z - mean) ** 2).mean(-1, keepdims=True) + eps)
    normalised = (z - mean) / std
    return normalised * gamma + beta, normalised, np.abs(z).max(-1, keepdims=True) / std


def tolerance(normalised, spread, gamma, beta, d):
    # z = x + residual is rounded in float32, and the float32 mean over d terms is off by
    # up to ~d * eps32 * max|z|: both shift z - mean by that much, which the division by
    # the row's std turns into (d + 4) * eps32 * max|z| / std in the normalised value.
    # The variance and the final FMA add a few ulp relative on top.
    relative = (d + 8) * EPS32 * (np.abs(normalised) + spread)
    return np.abs(gamma) * relative + 4 * EPS32 * np.abs(beta) + 1e-30


@pytest.mark.parametrize("d", [1, 2, 7, 15, 16, 17, 33, 384, 385])
@pytest.mark.parametrize("m", [1, 3, 17, 100])
def test_layer_norm_matches_float64(isa, num_threads, rng, m, d):
    x = (rng.standard_normal((m, d)) * 3 + 1.5).astype(np.float32)
    residual = rng.standard_normal((m, d)).astype(np.float32)
    gamma = rng.standard_normal(d).astype(np.float32)
    beta = rng.standard_normal(d).astype(np.float32)
    for r in (None, residual):
        y = padfree.layer_norm(x, gamma, beta, eps=1e-5, residual=r, num_threads=num_threads)
        expected, normalised, spread = layer_norm_ref(x, gamma, beta, 1e-5, r)
        assert y.dtype == np.float32 and y.shape == x.shape
        assert np.all(np.abs(y - expected) <= tolerance(normalised, spread, gamma, beta, d))


def test_layer_norm_rows_are_independent(isa, rng):
    x = rng.standard_normal((300, 384)).astype(np.float32)
    residual = rng.standard_normal((300, 384)).astype(np.float32)
    gamma = rng.standard_normal(384).astype(np.float32)
    beta = rng.standard_normal(384).astype(np.float32)
    full = padfree.layer_norm(x, gamma, beta, residual=residual, num_threads=1)
    np.testing.assert_array_equal(
        padfree.layer_norm(x, gamma, beta, residual=residual, num_threads=2), full
    )
    np.testing.assert_array_equal(
        padfree.layer_norm(x[5:6], gamma, beta, residual=residual[5:6]), full[5:6]
    )


def test_layer_norm_shapes_strides_and_inputs_untouched(rng):
    base = rng.standard_normal((2, 6, 20)).astype(np.float32)
    x = base[:, ::2, ::2]  # (2, 3, 10), strided
    residual = rng.standard_normal((2, 3, 10)).astype(np.float32)
    gamma = np.linspace(0.5, 2.0, 10, dtype=np.float32)
    beta = np.linspace(-1.0, 1.0, 10, dtype=np.float32)
    snapshot = (base.copy(), residual.copy())
    y = padfree.layer_norm(x, gamma, beta, eps=1e-3, residual=residual)
    expected, normalised, spread = layer_norm_ref(x, gamma, beta, 1e-3, residual)
    assert y.shape == (2, 3, 10)
    assert np.all(np.abs(y - expected) <= tolerance(normalised, spread, gamma, beta, 10))
    np.testing.assert_array_equal(snapshot[0], base)
    np.testing.assert_array_equal(snapshot[1], residual)
    assert padfree.layer_norm(np.ones((0, 4), np.float32), np.ones(4, np.float32),
                              np.ones(4, np.float32)).shape == (0, 4)


def test_layer_norm_errors():
    x = np.ones((2, 4), np.float32)
    g = np.ones(4, np.float32)
    with pytest.raises(TypeError, match=r"x must have dtype float32, got float64"):
        padfree.layer_norm(x.astype(np.float64), g, g)
    with pytest.raises(ValueError, match=r"gamma must have shape \(4,\).*got \(3,\)"):
        padfree.layer_norm(x, g[:3], g)
    with pytest.raises(ValueError, match=r"beta must have shape \(4,\)"):
        padfree.layer_norm(x, g, np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match=r"eps must be a positive finite float, got 0"):
        padfree.layer_norm(x, g, g, eps=0.0)
    with pytest.raises(TypeError, match=r"eps must be a float, got str"):
        padfree.layer_norm(x, g, g, eps="1e-5")
    with pytest.raises(ValueError, match=r"residual must have the shape of x \(2, 4\)"):
        padfree.layer_norm(x, g, g, residual=np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"x must have at least 1 dimension"):
        padfree.layer_norm(np.float32(1), g, g)


def test_layer_norm_in_place_through_core(isa, rng):
    # The encoder normalises in place: y may alias x or the residual (the C++ contract).
    from padfree import _core

    x = rng.standard_normal((37, 385)).astype(np.float32)
    r = rng.standard_normal((37, 385)).astype(np.float32)
    gamma = rng.standard_normal(385).astype(np.float32)
    beta = rng.standard_normal(385).astype(np.float32)
    expected = padfree.layer_norm(x, gamma, beta, residual=r)
    for alias in ("x", "residual"):
        a, b = x.copy(), r.copy()
        out = a if alias == "x" else b
        _core.layer_norm_f32(a, b, gamma, beta, 1e-5, out, 2)
        np.testing.assert_array_equal(out, expected)
    a = x.copy()
    _core.layer_norm_f32(a, None, gamma, beta, 1e-5, a, 1)
    np.testing.assert_array_equal(a, padfree.layer_norm(x, gamma, beta))
