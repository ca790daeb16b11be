"""A structurally pruned MiniLM exported by `joule run ... --export-hf` loads in transformers (AutoModel and
AutoTokenizer from the exported folder alone) and in sentence-transformers (SentenceTransformer(folder), its
modules.json pipeline: transformer, mean pooling, normalisation), and both give the embeddings `joule embed`
gives for the same folder. The pooler weights are the input's, bit for bit; the tokenizer files are there.

usage: check_hf_export.py JOULE_BIN MINILM_DIR RECIPE WORKDIR
"""
import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer
from transformers import AutoModel, AutoTokenizer

TEXTS = ["A man is playing a guitar.", "Pruned feed-forward layers are narrower than the config of the input said."]


def main():
    joule, model_dir, recipe, work = sys.argv[1:5]
    os.makedirs(work, exist_ok=True)
    hf = os.path.join(work, "hf")
    emb = os.path.join(work, "embeddings.json")
    subprocess.run([joule, "run", recipe, model_dir, "-o", os.path.join(work, "m.pt"), "--export-hf", hf,
                    "--reps", "1", "--warmup", "0", "--energy-windows", "2"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([joule, "embed", "--model", hf, *TEXTS, "-o", emb], check=True, stdout=subprocess.DEVNULL)
    cpp = torch.tensor([r["embedding"] for r in json.load(open(emb))])

    with open(os.path.join(hf, "config.json")) as f:
        width = json.load(f)["intermediate_size"]
    with open(os.path.join(model_dir, "config.json")) as f:
        original = json.load(f)["intermediate_size"]
    assert width < original, f"the recipe should narrow the feed-forward layers: {width} vs {original}"

    # The pooler (not on the sentence-embedding path) is the input's, bit for bit, not re-initialised by transformers.
    ref_sd, out_sd = load_file(os.path.join(model_dir, "model.safetensors")), load_file(os.path.join(hf, "model.safetensors"))
    for k in ("pooler.dense.weight", "pooler.dense.bias"):
        assert torch.equal(ref_sd[k], out_sd[k]), k
    for f in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):
        assert os.path.exists(os.path.join(hf, f)), f"the export lacks {f}"

    model = AutoModel.from_pretrained(hf).eval()  # a size mismatch with config.json raises here
    assert torch.equal(model.pooler.dense.weight.detach(), ref_sd["pooler.dense.weight"])
    assert model.config.intermediate_size == width
    assert model.encoder.layer[0].intermediate.dense.weight.shape[0] == width
    tok = AutoTokenizer.from_pretrained(hf)
    ref_tok = AutoTokenizer.from_pretrained(model_dir)
    assert tok(TEXTS)["input_ids"] == ref_tok(TEXTS)["input_ids"]
    batch = tok(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        h = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
    ref = torch.nn.functional.normalize((h * mask).sum(1) / mask.sum(1), dim=1)
    err = (ref - cpp).abs().max().item()
    st = SentenceTransformer(hf, device="cpu")
    st_emb = torch.from_numpy(st.encode(TEXTS, batch_size=len(TEXTS)))
    st_err = (st_emb - cpp).abs().max().item()
    norms = st_emb.norm(dim=1)
    print(f"intermediate_size {width} (input {original}); max |transformers - joule| = {err:.2e}, "
          f"|sentence-transformers - joule| = {st_err:.2e}, norms {norms.tolist()}")
    assert err < 1e-4, err
    assert st_err < 1e-4, st_err
    assert (norms - 1).abs().max().item() < 1e-5, norms


if __name__ == "__main__":
    main()
