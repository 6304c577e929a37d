"""padfree.Linear / padfree.linear: float64 reference for every epilogue, tails, ISAs,
threads, bit-for-bit batch and thread invariance, activation accuracy, error paths."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

import padfree
from padfree import _core

EPS32 = 2.0**-24  # unit roundoff of float32
M_VALUES = [1, 2, 3, 7, 15, 16, 17, 31, 33, 100, 257]
ACTIVATIONS = [None, "relu", "gelu", "gelu_tanh"]
_erfc = np.vectorize(math.erfc, otypes=[np.float64])
_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu_erf_ref(z):
    return 0.5 * z * _erfc(-z / math.sqrt(2.0))


def gelu_tanh_inner(z):
    return math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3)


def gelu_tanh_ref(z):
    # x/2 (1 + tanh y) written as x / (1 + e^{-2y}): the same function, no cancellation.
    with np.errstate(over="ignore"):
        return z / (1.0 + np.exp(-2.0 * gelu_tanh_inner(z)))


def activation_ref(z, activation):
    if activation is None:
        return z
    if activation == "relu":
        return np.maximum(z, 0.0)
    if activation == "gelu":
        return gelu_erf_ref(z)
    return gelu_tanh_ref(z)


def reference(x, w, b, activation, residual):
    """float64 result and a float64 bound on the float32 kernel's error."""
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    z = x64 @ w64.T
    magnitude = np.abs(x64) @ np.abs(w64).T
    if b is not None:
        z = z + b
        magnitude = magnitude + np.abs(b)
    y = activation_ref(z, activation)
    # A K-term float32 dot product (plus the bias) is off by at most (K + 1) * eps32 times
    # the sum of |terms|; the activations have slope <= 1.13 and add a few ulp of |y|
    # (see the sweeps below); the residual add rounds once more.
    k = x.shape[-1]
    bound = 1.2 * (k + 1) * EPS32 * magnitude + 16 * EPS32 * np.abs(y) + 1e-30
    if residual is not None:
        y = y + residual
        bound = bound + 2 * EPS32 * np.abs(y)
    return y, bound


def random_layer(rng, n, k, bias=True):
    w = rng.standard_normal((n, k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32) if bias else None
    return w, b


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("m", M_VALUES)
def test_linear_matches_float64(isa, num_threads, rng, m, activation):
    k, n = 37, 53  # odd, and neither a multiple of any tile width
    w, b = random_layer(rng, n, k)
    x = rng.standard_normal((m, k)).astype(np.float32)
    residual = rng.standard_normal((m, n)).astype(np.float32)
    layer = padfree.Linear(w, b, activation=activation)
    for r in (None, residual):
        y = layer(x, residual=r, num_threads=num_threads)
        expected, bound = reference(x, w, b, activation, r)
        assert y.dtype == np.float32 and y.shape == (m, n)
        assert np.all(np.abs(y - expected) <= bound)


# k > 768 is cut into blocks whose partial sums wait in scratch: (1100, 70) and (1537, 50).
@pytest.mark.parametrize(
    "k,n", [(1, 1), (1, 17), (16, 16), (47, 33), (129, 97), (384, 49), (1100, 70), (1537, 50)]
)
def test_shapes_and_no_bias(isa, num_threads, rng, k, n):
    w, _ = random_layer(rng, n, k, bias=False)
    x = rng.standard_normal((2, 9, k)).astype(np.float32)
    y = padfree.linear(x, w, num_threads=num_threads)
    expected, bound = reference(x.reshape(-1, k), w, None, None, None)
    assert y.shape == (2, 9, n)
    assert np.all(np.abs(y.reshape(-1, n) - expected) <= bound)


def test_zero_sized(isa):
    w = np.ones((3, 4), np.float32)
    assert padfree.linear(np.ones((0, 4), np.float32), w).shape == (0, 3)
    y = padfree.linear(np.ones((2, 0), np.float32), np.ones((3, 0), np.float32),
                       bias=np.arange(3, dtype=np.float32))
    np.testing.assert_array_equal(y, [[0, 1, 2], [0, 1, 2]])


@pytest.mark.parametrize(
    "m,k,n",
    [(257, 129, 301),  # many row tiles: threads split rows
     (16, 300, 1000),  # few row tiles: threads split columns
     (33, 384, 1152),
     (45, 1537, 200)],  # k cut into blocks
)
@pytest.mark.parametrize("activation", [None, "gelu"])
def test_batch_and_thread_invariance_bit_for_bit(isa, rng, m, k, n, activation):
    w, b = random_layer(rng, n, k)
    x = rng.standard_normal((m, k)).astype(np.float32)
    layer = padfree.Linear(w, b, activation=activation)
    full = layer(x, num_threads=1)
    np.testing.assert_array_equal(layer(x, num_threads=2), full)
    for row in (0, 1, 7, m // 2, m - 1):
        for threads in (1, 2):
            np.testing.assert_array_equal(layer(x[row:row + 1], num_threads=threads),
                                          full[row:row + 1])
    # A batch that starts mid-tile and is padded with other rows on either side.
    np.testing.assert_array_equal(layer(x[3:m - 2], num_threads=2), full[3:m - 2])
    bigger = np.concatenate([rng.standard_normal((5, k)).astype(np.float32), x])
    np.testing.assert_array_equal(layer(bigger, num_threads=2)[5:], full)


def test_packed_layout_is_isa_independent(rng):
    w, b = random_layer(rng, 41, 29)
    x = rng.standard_normal((19, 29)).astype(np.float32)
    layer = padfree.Linear(w, b, activation="relu")
    expected, bound = reference(x, w, b, "relu", None)
    previous = _core.get_isa()
    try:
        for name in padfree.cpu_info()["supported_isas"]:
            _core.set_isa(name)
            assert np.all(np.abs(layer(x) - expected) <= bound), name
    finally:
        _core.set_isa(previous)


def test_strided_inputs_and_inputs_untouched(rng):
    w, b = random_layer(rng, 24, 20)
    base = rng.standard_normal((10, 40)).astype(np.float32)
    x = base[::2, ::2]  # non-contiguous rows and columns
    residual = rng.standard_normal((24, 5)).astype(np.float32).T  # transposed view
    snapshot = (base.copy(), residual.copy(), w.copy(), b.copy())
    y = padfree.linear(x, w, b, activation="gelu_tanh", residual=residual)
    expected, bound = reference(np.ascontiguousarray(x), w, b, "gelu_tanh", residual)
    assert np.all(np.abs(y - expected) <= bound)
    for before, after in zip(snapshot, (base, residual, w, b)):
        np.testing.assert_array_equal(before, after)


def test_weight_accessors_and_pickle(rng):
    w, b = random_layer(rng, 13, 11)
    layer = padfree.Linear(w, b, activation="gelu")
    np.testing.assert_array_equal(layer.weight, w)
    np.testing.assert_array_equal(layer.bias, b)
    assert (layer.in_features, layer.out_features, layer.activation) == (11, 13, "gelu")
    assert "out_features=13" in repr(layer)
    clone = pickle.loads(pickle.dumps(layer))
    x = rng.standard_normal((4, 11)).astype(np.float32)
    np.testing.assert_array_equal(clone(x), layer(x))
    core_clone = pickle.loads(pickle.dumps(layer._layer))
    np.testing.assert_array_equal(core_clone.unpack()[0], w)
    assert padfree.Linear(w).bias is None


# ---- activation accuracy over dense sweeps -------------------------------------------


def _sweep():
    dense = np.linspace(-12.0, 12.0, 200_001, dtype=np.float32)
    tiny = np.float32(10.0) ** np.linspace(-30, 1.5, 10_001).astype(np.float32)
    return np.concatenate([dense, tiny, -tiny, np.float32([0.0, -0.0, 1e30, -1e30])])


def test_gelu_erf_accuracy(isa):
    # Measured: relative error <= 4.0e-7 (6 ulp) for results in the normal range (the erfc
    # fit, exp's 2 ulp and a few roundings); bound 6e-7 relative, plus FLT_MIN absolute
    # for results that underflow (x < -13).
    x = _sweep()
    got = _core.activation_f32(x, 2).astype(np.float64)
    want = gelu_erf_ref(x.astype(np.float64))
    assert np.all(np.abs(got - want) <= 6e-7 * np.abs(want) + np.finfo(np.float32).tiny)


def test_gelu_tanh_accuracy(isa):
    # exp(-2y) from a float32 y carries a relative error of |2y| * eps32 that no float32
    # evaluation avoids, so the bound grows with |y|: measured <= 2.5 * eps32 * (1 + |2y|)
    # relative; bound 4 * eps32 * (1 + |2y|), plus 4 FLT_MIN absolute: the AVX2 exp
    # saturates at e^88.72, which flushes results below |x| * 2.9e-39 to zero.
    x = _sweep()
    got = _core.activation_f32(x, 3).astype(np.float64)
    x64 = x.astype(np.float64)
    want = gelu_tanh_ref(x64)
    bound = 4 * EPS32 * (1 + np.abs(2 * gelu_tanh_inner(x64))) * np.abs(want)
    assert np.all(np.abs(got - want) <= bound + 4 * np.finfo(np.float32).tiny)


def test_erf_accuracy(isa):
    # Measured: absolute error <= 1.5e-7 and <= 2.5 ulp of the result; bound 4 ulp.
    x = _sweep()
    got = _core.erf_f32(x).astype(np.float64)
    want = _erf(x.astype(np.float64))
    ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(got - want) <= 4 * ulp)


def test_relu_and_special_values(isa):
    x = np.float32([np.nan, np.inf, -np.inf, 0.0, -0.0, 3.0, -3.0])
    relu = _core.activation_f32(x, 1)
    assert np.isnan(relu[0]) and relu[1] == np.inf and list(relu[2:]) == [0, 0, 0, 3, 0]
    for code in (2, 3):
        y = _core.activation_f32(x, code)
        assert np.isnan(y[0]) and y[1] == np.inf and y[3] == 0 and np.isnan(y[2])


# ---- error paths ----------------------------------------------------------------------


def test_errors_name_the_argument():
    w = np.ones((3, 4), np.float32)
    x = np.ones((2, 4), np.float32)
    with pytest.raises(TypeError, match=r"x must have dtype float32, got float64"):
        padfree.linear(x.astype(np.float64), w)
    with pytest.raises(TypeError, match=r"weight must have dtype float32, got float64"):
        padfree.Linear(w.astype(np.float64))
    with pytest.raises(TypeError, match=r"weight must have dtype float32, got int64"):
        padfree.Linear(np.ones((3, 4), np.int64))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 4\).*got \(2, 5\)"):
        padfree.linear(np.ones((2, 5), np.float32), w)
    with pytest.raises(ValueError, match=r"weight must have shape \(out_features, in_features\)"):
        padfree.Linear(np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\).*got \(4,\)"):
        padfree.Linear(w, np.ones(4, np.float32))
    bad = w.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"weight must be finite, got 1 NaN"):
        padfree.Linear(bad)
    with pytest.raises(ValueError, match=r"bias must be finite"):
        padfree.Linear(w, np.float32([0, np.inf, 0]))
    with pytest.raises(ValueError, match=r"activation must be one of .*got 'swish'"):
        padfree.Linear(w, activation="swish")
    with pytest.raises(TypeError, match=r"activation must be None or a str"):
        padfree.Linear(w, activation=1)
    with pytest.raises(ValueError, match=r"residual must have the output's shape \(2, 3\)"):
        padfree.linear(x, w, residual=np.ones((2, 4), np.float32))
    with pytest.raises(TypeError, match=r"residual must have dtype float32"):
        padfree.linear(x, w, residual=np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"num_threads must be a positive int"):
        padfree.linear(x, w, num_threads=0)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 4\)"):
        padfree.linear(np.float32(1.0), w)


def test_output_may_alias_residual_through_core(isa, rng):
    # The encoder adds the residual in place: y may be the residual array (C++ contract).
    w, b = random_layer(rng, 130, 67)
    x = rng.standard_normal((45, 67)).astype(np.float32)
    residual = rng.standard_normal((45, 130)).astype(np.float32)
    layer = padfree.Linear(w, b, activation="gelu")
    expected = layer(x, residual=residual)
    inplace = residual.copy()
    layer._layer.forward(x, inplace, inplace, 2, 2)
    np.testing.assert_array_equal(inplace, expected)
