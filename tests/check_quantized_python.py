"""A W4 MiniLM quantized by `joule quantize` loads and runs in Python (torch.ops.load_library + torch.jit.load)
and gives the embeddings `joule embed` gives in C++.

usage: check_quantized_python.py LIBJOULE_OPS JOULE_BIN MINILM_DIR WORKDIR
"""
import json
import os
import subprocess
import sys

import torch
from transformers import AutoTokenizer

TEXTS = ["A man is playing a guitar.", "Quantized weights take a quarter of the space, or less."]


def main():
    lib, joule, model_dir, work = sys.argv[1:5]
    os.makedirs(work, exist_ok=True)
    q = os.path.join(work, "minilm-w4.pt")
    emb = os.path.join(work, "embeddings.json")
    subprocess.run([joule, "quantize", "--scheme", "w4", "--group", "128", model_dir, "-o", q, "--reps", "2",
                    "--energy-windows", "2"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([joule, "embed", "--model", q, *TEXTS, "-o", emb], check=True, stdout=subprocess.DEVNULL)
    cpp = torch.tensor([r["embedding"] for r in json.load(open(emb))])

    torch.ops.load_library(lib)
    m = torch.jit.load(q)
    tok = AutoTokenizer.from_pretrained(model_dir)
    # joule embed pads each batch to its longest text, as this does.
    enc = tok(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        py = m(enc["input_ids"], enc["attention_mask"])
    diff = (py - cpp).abs().max().item()
    print(f"max |python - c++| = {diff:.3g}")
    assert diff < 1e-4, diff
    assert any(n.kind() == "joule::linear_w4" for n in m.graph.nodes()), "no joule::linear_w4 in the graph"
    print("quantized model loads and runs in Python: ok")


if __name__ == "__main__":
    main()
