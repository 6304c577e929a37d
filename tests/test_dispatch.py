"""Runtime ISA dispatch: PADFREE_ISA, set_isa, and padfree.cpu_info()."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import padfree
from padfree import _core

ALL_ISAS = ["scalar", "avx2", "avx512"]
SUPPORTED = padfree.cpu_info()["supported_isas"]
PACKAGE_ROOT = str(Path(padfree.__file__).resolve().parent.parent)


def run_python(code: str, isa: str | None):
    """Run `code` in a fresh interpreter (the ISA is chosen once, at import)."""
    env = dict(os.environ)
    env.pop("PADFREE_ISA", None)
    if isa is not None:
        env["PADFREE_ISA"] = isa
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


REPORT = (
    "import json, numpy as np, padfree; "
    "p = padfree.masked_softmax(np.arange(20, dtype=np.float32), lengths=17); "
    "print(json.dumps([padfree.cpu_info()['isa'], float(p.sum())]))"
)


@pytest.mark.parametrize("isa", SUPPORTED)
def test_env_override_selects_the_isa(isa):
    result = run_python(REPORT, isa)
    assert result.returncode == 0, result.stderr
    chosen, total = json.loads(result.stdout)
    assert chosen == isa
    assert abs(total - 1) < 1e-6


@pytest.mark.parametrize("value", [None, ""])
def test_unset_or_empty_env_selects_the_best(value):
    result = run_python(REPORT, value)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0] == padfree.cpu_info()["best_isa"]


@pytest.mark.parametrize("value", ["sse2", "AVX512", "avx-512", " avx2"])
def test_env_override_rejects_unknown_names(value):
    result = run_python("import padfree", value)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert f"PADFREE_ISA must be one of scalar, avx2, avx512; got '{value}'" in result.stderr


@pytest.mark.parametrize("isa", [name for name in ALL_ISAS if name not in SUPPORTED] or [None])
def test_env_override_rejects_isas_the_cpu_cannot_run(isa):
    if isa is None:
        pytest.skip("this CPU runs every ISA padfree has; nothing unsupported to request")
    result = run_python("import padfree", isa)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert f"PADFREE_ISA={isa} but this CPU (or this build) cannot run it" in result.stderr


def test_cpu_info_contents():
    info = padfree.cpu_info()
    assert set(info) == {
        "isa", "best_isa", "supported_isas", "features", "num_threads", "openmp_version"
    }
    assert info["isa"] in ALL_ISAS and info["isa"] == _core.get_isa()
    assert info["supported_isas"][0] == "scalar"
    assert info["supported_isas"] == [name for name in ALL_ISAS if name in info["supported_isas"]]
    assert info["best_isa"] == info["supported_isas"][-1]
    assert isinstance(info["num_threads"], int) and info["num_threads"] >= 1
    assert isinstance(info["openmp_version"], int) and info["openmp_version"] >= 201107

    features = info["features"]
    assert all(isinstance(value, bool) for value in features.values())
    for name in ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512dq",
                 "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile"):
        assert name in features
    # The selection follows the features.
    assert ("avx2" in info["supported_isas"]) == (
        features["avx2"] and features["fma"] and features["f16c"]
    )
    assert ("avx512" in info["supported_isas"]) == all(
        features[f] for f in ("avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma")
    )


def test_cpu_info_returns_a_fresh_dict():
    info = padfree.cpu_info()
    info["isa"] = "changed"
    assert padfree.cpu_info()["isa"] != "changed"


def test_set_isa_round_trip_and_errors():
    previous = _core.get_isa()
    try:
        for isa in SUPPORTED:
            _core.set_isa(isa)
            assert padfree.cpu_info()["isa"] == isa
    finally:
        _core.set_isa(previous)
    with pytest.raises(ValueError, match="unknown ISA 'mmx'; expected scalar, avx2 or avx512"):
        _core.set_isa("mmx")


def test_omp_num_threads_is_reported(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    result = run_python("import padfree; print(padfree.cpu_info()['num_threads'])", None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"
