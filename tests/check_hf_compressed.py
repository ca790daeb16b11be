"""Quantized and 2:4-packed MiniLMs exported by `joule ... --export-hf` load where users load them.

W8A8 (compressed-tensors int-quantized) and W4 (pack-quantized) folders load in transformers.AutoModel through its
compressed-tensors quantizer and in SentenceTransformer; the weights those libraries decompress equal Joule's
dequantized weights (from the .pt's packed buffers) exactly; their embeddings agree with `joule embed` (W4 keeps
float activations: to float rounding; W8A8's activations are fake-quantized per token by compressed-tensors: close);
with STS-B dev at hand, sentence-transformers' Spearman on the export is within 0.05 (5 points x100) of Joule's own
score of the .pt. A 2:4-packed model exports dense weights with its zeros and sparsity_config {dense, 2:4}, and
matches `joule embed` to 1e-5. Joule reads each folder back into the same ops: its embeddings are bit-identical to
the .pt's. The pooler weights are the input checkpoint's, bit for bit. Folders that compressed-tensors' own
compressors write (W4 asymmetric and symmetric groups, W8A8) load in Joule and match transformers.

usage: check_hf_compressed.py LIBJOULE_OPS JOULE_BIN MINILM_DIR WORKDIR [STSB_DEV_TSV]
"""
import csv
import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file
from scipy.stats import spearmanr
from sentence_transformers import SentenceTransformer
from transformers import AutoModel

# The small-data check that always runs: cosine similarities of these pairs.
PAIRS = [
    ("A man is playing a guitar.", "A man plays the guitar."),
    ("A woman is slicing an onion.", "Someone is cutting vegetables."),
    ("The cat sits on the mat.", "Stock markets fell sharply on Monday."),
    ("Two dogs run across a field.", "A pair of dogs is running through the grass."),
    ("A child is riding a horse.", "The plane is taking off."),
    ("Quantized weights take a quarter of the space.", "Int8 weights are four times smaller than floats."),
]
TEXTS = [t for p in PAIRS for t in p]


def run(*args):
    subprocess.run(list(args), check=True, stdout=subprocess.DEVNULL)


def joule_embed(joule, model, texts, out):
    run(joule, "embed", "--model", model, *texts, "-o", out)
    return torch.tensor([r["embedding"] for r in json.load(open(out))], dtype=torch.float32)


def cosines(e):
    e = torch.nn.functional.normalize(e, dim=1)
    return (e[0::2] * e[1::2]).sum(1)


def joule_dequantized(pt, names):
    """Module path -> the float weight Joule's op computes with, from the packed buffers of the .pt."""
    m = torch.jit.load(pt)
    buf = dict(m.named_buffers())
    out = {}
    for n in names:
        key = "_joule_" + (n + ".weight").replace(".", "_") + "_"
        if key + "qweight" not in buf:
            continue
        q = buf[key + "qweight"]
        if key + "w_scale" in buf:  # W8A8: w = w_scale[n] * q
            out[n] = q.float() * buf[key + "w_scale"].unsqueeze(1)
        else:  # W4: w = scales[n, g] * (q - zeros[n, g]), two codes per byte, low nibble first
            scales, zeros = buf[key + "scales"], buf[key + "zeros"]
            codes = torch.stack([q & 15, q >> 4], dim=-1).reshape(q.shape[0], -1)
            K = codes.shape[1]  # MiniLM's K is even: no pad nibble
            group = -(-K // scales.shape[1])
            g = torch.arange(K) // group
            out[n] = scales[:, g] * (codes.float() - zeros[:, g].float())
    return out


# transformers 5.23 + compressed-tensors 0.20.1 cannot load an asymmetric pack-quantized checkpoint as it stands
# (compressed on the first forward): the model it builds on the meta device expects weight_zero_point unpacked,
# [N, groups], while the format (and compressed-tensors' own decompress) packs it 8 per int32, [N/8, groups]:
#   RuntimeError: You set `ignore_mismatched_sizes` to `False`, thus raising an error. (report: "weight_zero_point |
#   MISMATCH | Reinit due to size mismatch - ckpt: torch.Size([48, 3]) vs model:torch.Size([384, 3])")
# Such folders load with CompressedTensorsConfig(dequantize=True): compressed-tensors decompresses each layer's
# tensors at load time. The check tries the default first, so it notices when the libraries are fixed.
def load_kwargs(hf):
    from transformers import CompressedTensorsConfig
    try:
        model = AutoModel.from_pretrained(hf).eval()
        with torch.no_grad():  # weights decompress on the first forward
            model(input_ids=torch.tensor([[101, 102]]), attention_mask=torch.tensor([[1, 1]]))
        return model, {}, "AutoModel (compressed, decompressed on the first forward)"
    except RuntimeError as e:
        if "ignore_mismatched_sizes" not in str(e):
            raise
    kwargs = {"quantization_config": CompressedTensorsConfig(dequantize=True)}
    return (AutoModel.from_pretrained(hf, **kwargs).eval(), kwargs,
            "AutoModel with CompressedTensorsConfig(dequantize=True) (the default load fails: zero-point size mismatch)")


def stsb(dev):
    pairs = []
    with open(dev, newline="", encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) >= 7:
                try:
                    pairs.append((row[5], row[6], float(row[4])))
                except ValueError:
                    pass
    return pairs


def st_spearman(st, pairs):
    sentences = sorted({s for a, b, _ in pairs for s in (a, b)})
    e = st.encode(sentences, batch_size=64, convert_to_tensor=True)
    e = torch.nn.functional.normalize(e, dim=1)
    idx = {s: i for i, s in enumerate(sentences)}
    pred = [(e[idx[a]] * e[idx[b]]).sum().item() for a, b, _ in pairs]
    return 100 * spearmanr(pred, [g for _, _, g in pairs]).correlation


def check_pooler(model_dir, hf):
    ref, out = load_file(os.path.join(model_dir, "model.safetensors")), load_file(os.path.join(hf, "model.safetensors"))
    for k in ("pooler.dense.weight", "pooler.dense.bias"):
        assert torch.equal(ref[k], out[k]), f"{k} differs from the input checkpoint"


def check_quantized(lib, joule, model_dir, work, scheme, dev):
    pt, hf = os.path.join(work, f"{scheme}.pt"), os.path.join(work, f"{scheme}-hf")
    run(joule, "quantize", "--scheme", scheme, model_dir, "-o", pt, "--export-hf", hf, "--reps", "1", "--warmup", "0",
        "--energy-windows", "2")
    qc = json.load(open(os.path.join(hf, "config.json")))["quantization_config"]
    fmt = {"w8a8": "int-quantized", "w4": "pack-quantized"}[scheme]
    assert qc["quant_method"] == "compressed-tensors" and qc["format"] == fmt and qc["quantization_status"] == "compressed", qc
    check_pooler(model_dir, hf)

    model, kwargs, how = load_kwargs(hf)
    linears = [n for n, mod in model.named_modules() if isinstance(mod, torch.nn.Linear) and n.startswith("encoder.")]
    joule_w = joule_dequantized(pt, linears)
    assert len(joule_w) == len(linears) == 36, (len(joule_w), len(linears))
    for n in linears:
        w = model.get_submodule(n).weight.detach()
        assert w.dtype == torch.float32 and torch.equal(w, joule_w[n]), \
            f"{scheme}: {n}: transformers' decompressed weight differs from Joule's (max {(w - joule_w[n]).abs().max()})"

    cpp = joule_embed(joule, pt, TEXTS, os.path.join(work, f"{scheme}-pt.json"))
    back = joule_embed(joule, hf, TEXTS, os.path.join(work, f"{scheme}-hf.json"))
    assert torch.equal(cpp, back), f"{scheme}: the re-imported folder's embeddings differ from the .pt's"
    st = SentenceTransformer(hf, device="cpu", model_kwargs=kwargs)
    # sentence-transformers 6.2 calls the model's forward method directly, past the pre-hook that decompresses a
    # compressed checkpoint ("RuntimeError: self and mat2 must have the same dtype, but got Float and Char"):
    # one call through the module fires it first.
    with torch.no_grad():
        st[0].auto_model(input_ids=torch.tensor([[101, 102]]), attention_mask=torch.tensor([[1, 1]]))
    st_emb = torch.from_numpy(st.encode(TEXTS, batch_size=len(TEXTS)))
    emb_err = (st_emb - cpp).abs().max().item()
    cos_err = (cosines(st_emb) - cosines(cpp)).abs().max().item()
    line = (f"{scheme}: loaded by {how}; {len(linears)} linears decompress to Joule's weights exactly; re-import bit-identical; "
            f"max |sentence-transformers - joule| = {emb_err:.2e}, pair cosines {cos_err:.2e}")
    if scheme == "w4":  # float activations: the same maths up to summation order
        assert emb_err < 1e-4, emb_err
    else:  # activations fake-quantized by compressed-tensors (range [-128, 127]) vs Joule's int8 kernel
        assert cos_err < 0.02, cos_err
    if dev:
        pairs = stsb(dev)
        res = subprocess.run([joule, "eval", "stsb", "--json", "--model", pt, "--data", dev], check=True,
                             capture_output=True, text=True)
        ours = json.loads(res.stdout)["spearman"]
        theirs = st_spearman(st, pairs)
        line += f"; STS-B dev Spearman x100: joule {ours:.3f}, sentence-transformers {theirs:.3f}"
        assert abs(ours - theirs) <= 5.0, (ours, theirs)
    print(line)


def check_sp24(joule, model_dir, work):
    pt, hf = os.path.join(work, "sp24.pt"), os.path.join(work, "sp24-hf")
    run(joule, "prune", "-m", "2:4", "--pack", model_dir, "-o", pt, "--export-hf", hf, "--reps", "1", "--warmup", "0",
        "--energy-windows", "2")
    qc = json.load(open(os.path.join(hf, "config.json")))["quantization_config"]
    sc = qc["sparsity_config"]
    from compressed_tensors.config import SparsityCompressionConfig
    parsed = SparsityCompressionConfig.load_from_registry(sc["format"], **sc)
    assert parsed.format == "dense" and parsed.sparsity_structure == "2:4", parsed
    check_pooler(model_dir, hf)
    model = AutoModel.from_pretrained(hf).eval()
    for n in sc["targets"]:
        w = model.get_submodule(n).weight.detach()
        assert ((w.reshape(w.shape[0], -1, 4) != 0).sum(-1) <= 2).all(), f"{n} is not 2:4 sparse"
    cpp = joule_embed(joule, pt, TEXTS, os.path.join(work, "sp24-pt.json"))
    st_emb = torch.from_numpy(SentenceTransformer(hf, device="cpu").encode(TEXTS, batch_size=len(TEXTS)))
    err = (st_emb - cpp).abs().max().item()
    print(f"sp24: {len(sc['targets'])} linears dense with their zeros (global_sparsity {sc['global_sparsity']:.3f}); "
          f"max |sentence-transformers - joule| = {err:.2e}")
    assert err <= 1e-5, err


def check_foreign(joule, model_dir, work):
    """Folders written by compressed-tensors itself (its compressors, not Joule's export) load in Joule: W4 group
    weights asymmetric and symmetric, whose float activations make `joule embed` match transformers' decompressed
    model to float rounding, and W8 channel weights (codes kept in [-127, 127]) with token-dynamic inputs."""
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import QuantizationConfig, apply_quantization_config
    from transformers import BertConfig, BertModel, BertTokenizer, CompressedTensorsConfig
    for name, fmt, weights, acts in (
            ("w4-asym", "pack-quantized", {"num_bits": 4, "type": "int", "symmetric": False, "strategy": "group",
                                           "group_size": 32}, None),
            ("w4-sym", "pack-quantized", {"num_bits": 4, "type": "int", "symmetric": True, "strategy": "group",
                                          "group_size": 32}, None),
            ("w8a8", "int-quantized", {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "channel"},
             {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "token", "dynamic": True})):
        torch.manual_seed(0)
        model = BertModel(BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=128, max_position_embeddings=128)).eval()
        group = {"targets": ["Linear"], "weights": weights, "input_activations": acts}
        qc = QuantizationConfig.model_validate({"config_groups": {"group_0": group}, "format": fmt, "ignore": ["pooler.dense"]})
        apply_quantization_config(model, qc)
        with torch.no_grad():  # the scales an observer would choose, set directly
            for _, mod in model.named_modules():
                if not hasattr(mod, "weight_scale"):
                    continue
                w = mod.weight
                if weights["num_bits"] == 8:
                    mod.weight_scale.copy_(w.abs().amax(1, keepdim=True) / 127)
                    continue
                g = w.reshape(w.shape[0], -1, 32)
                if weights["symmetric"]:
                    mod.weight_scale.copy_(g.abs().amax(-1) / 7.5)
                else:
                    lo, hi = g.amin(-1).clamp(max=0), g.amax(-1).clamp(min=0)
                    mod.weight_scale.copy_((hi - lo) / 15)
                    mod.weight_zero_point.copy_((torch.round(-lo / mod.weight_scale) - 8).clamp(-8, 7).to(mod.weight_zero_point.dtype))
        d = os.path.join(work, "foreign-" + name)
        compressor = ModelCompressor.from_pretrained_model(model, fmt)
        compressor.compress_model(model)
        model.save_pretrained(d)
        compressor.update_config(d)
        BertTokenizer(os.path.join(model_dir, "vocab.txt"), do_lower_case=True).save_pretrained(d)

        ours = joule_embed(joule, d, TEXTS, os.path.join(work, f"foreign-{name}.json"))
        ref_model = AutoModel.from_pretrained(d, quantization_config=CompressedTensorsConfig(dequantize=True)).eval()
        from transformers import AutoTokenizer
        batch = AutoTokenizer.from_pretrained(d)(TEXTS, padding=True, return_tensors="pt")
        with torch.no_grad():
            h = ref_model(**batch).last_hidden_state
        m = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
        ref = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=1)
        err = (ours - ref).abs().max().item()
        # W8A8: Joule quantizes the activations per token, the reference (dequantized weights) does not.
        print(f"foreign {name} ({fmt}, written by compressed-tensors): max |joule embed - transformers| = {err:.2e}")
        assert err < (1e-5 if weights["num_bits"] == 4 else 1e-2), (name, err)


def main():
    lib, joule, model_dir, work = sys.argv[1:5]
    dev = sys.argv[5] if len(sys.argv) > 5 and os.path.exists(sys.argv[5]) else None
    if not dev:
        print("STS-B dev not found: the Spearman comparison is skipped (the pair cosines are checked)")
    os.makedirs(work, exist_ok=True)
    torch.ops.load_library(lib)
    for scheme in ("w8a8", "w4"):
        check_quantized(lib, joule, model_dir, work, scheme, dev)
    check_sp24(joule, model_dir, work)
    check_foreign(joule, model_dir, work)


if __name__ == "__main__":
    main()
