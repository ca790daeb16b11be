"""sentence-transformers pipelines other than mean pooling + Normalize run in Joule as they are meant.

For each pooling mode Joule implements (cls, max, mean_sqrt_len_tokens, mean), with and without a Normalize module,
a small random BERT (MiniLM's vocabulary) is saved by sentence-transformers itself; `joule embed` on the folder
gives SentenceTransformer's embeddings (<= 1e-5), and a Joule export of it (`joule prune ... --export-hf`) writes
the same pipeline back: SentenceTransformer on the export matches `joule embed` on the .pt. A mode Joule does not
implement (weightedmean) is a one-line error.

usage: check_st_pooling.py JOULE_BIN MINILM_DIR WORKDIR
"""
import json
import os
import shutil
import subprocess
import sys

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
from transformers import BertConfig, BertModel, BertTokenizer

TEXTS = ["A man is playing a guitar.", "The first token is not the whole sentence, and padding must not count.",
         "Short one."]


def joule_embed(joule, model, out):
    subprocess.run([joule, "embed", "--model", model, *TEXTS, "-o", out], check=True, stdout=subprocess.DEVNULL)
    return torch.tensor([r["embedding"] for r in json.load(open(out))], dtype=torch.float32)


def make_model(base, d, mode, normalize):
    tr = Transformer(base, max_seq_length=128)
    modules = [tr, Pooling(tr.get_embedding_dimension(), pooling_mode=mode)]
    if normalize:
        modules.append(Normalize())
    st = SentenceTransformer(modules=modules, device="cpu")
    st.save(d)
    return st


def main():
    joule, minilm, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    torch.manual_seed(0)
    base = os.path.join(work, "base")
    cfg = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                     max_position_embeddings=128)
    BertModel(cfg).eval().save_pretrained(base)
    BertTokenizer(os.path.join(minilm, "vocab.txt"), do_lower_case=True).save_pretrained(base)
    results = {}
    for mode in ("cls", "max", "mean_sqrt_len_tokens", "mean"):
        for normalize in (True, False):
            name = f"{mode}-{'norm' if normalize else 'raw'}"
            d = os.path.join(work, name)
            shutil.rmtree(d, ignore_errors=True)
            st = make_model(base, d, mode, normalize)
            ref = torch.from_numpy(st.encode(TEXTS, batch_size=len(TEXTS)))
            ours = joule_embed(joule, d, os.path.join(work, name + ".json"))
            err = (ours - ref).abs().max().item()
            # The export: a pass that changes nothing the pipeline depends on, then the folder back in sentence-transformers.
            pt, hf = os.path.join(work, name + ".pt"), os.path.join(work, name + "-hf")
            shutil.rmtree(hf, ignore_errors=True)
            subprocess.run([joule, "prune", "--sparsity", "0.1", d, "-o", pt, "--export-hf", hf, "--reps", "1",
                            "--warmup", "0", "--energy-windows", "2"], check=True, stdout=subprocess.DEVNULL)
            st2 = SentenceTransformer(hf, device="cpu")
            exp_err = (torch.from_numpy(st2.encode(TEXTS, batch_size=len(TEXTS))) -
                       joule_embed(joule, pt, os.path.join(work, name + "-pt.json"))).abs().max().item()
            has_norm = any(m["type"].endswith("Normalize") for m in json.load(open(os.path.join(hf, "modules.json"))))
            print(f"{name}: max |sentence-transformers - joule embed| = {err:.2e}; export: {exp_err:.2e}, "
                  f"Normalize {'kept' if has_norm else 'absent'}")
            assert err <= 1e-5, (name, err)
            assert exp_err <= 1e-5, (name, exp_err)
            assert has_norm == normalize, name
            results[name] = ours
    # Each mode makes a difference, so mean pooling would fail these checks (mean_sqrt_len only scales the mean:
    # it differs before normalisation).
    for name, e in results.items():
        mean = "mean-" + name.split("-")[1]
        if name != mean and name != "mean_sqrt_len_tokens-norm":
            assert (e - results[mean]).abs().max().item() > 1e-2, name
    d = os.path.join(work, "weightedmean")
    shutil.rmtree(d, ignore_errors=True)
    make_model(base, d, "weightedmean", True)
    r = subprocess.run([joule, "embed", "--model", d, "x"], capture_output=True, text=True)
    err = r.stderr.strip()
    print(f"weightedmean: exit {r.returncode}: {err}")
    assert r.returncode == 1 and "\n" not in err and "'weightedmean'" in err, err


if __name__ == "__main__":
    main()
