"""Hostile TorchScript archives for tests/test_security.cpp, one per class of attack on the archive reader
(docs/SECURITY.md). Each is made the way an attacker would: a real torch.jit.save archive, then its zip records
edited (code rewritten, bytes flipped, records cut) with Python's zipfile.

usage: make_hostile.py OUTDIR
"""
import json
import os
import shutil
import struct
import sys
import zipfile
from typing import Tuple

import torch


class Reader(torch.nn.Module):
    """Reads a file when loaded (__setstate__) and adds its bytes to the output: data exfiltration."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.buf = torch.zeros(4)

    def forward(self, x):
        return x + self.buf

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, bool]:
        return (self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, bool]) -> None:
        self.path = state[0]
        self.training = state[1]
        self.buf = torch.from_file(self.path, False, 4, dtype=torch.float32)


class Looper(torch.nn.Module):
    """Never finishes loading: __setstate__ loops."""

    def __init__(self):
        super().__init__()
        self.n = 1

    def forward(self, x):
        return x * 2

    @torch.jit.export
    def __getstate__(self) -> Tuple[int, bool]:
        return (self.n, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[int, bool]) -> None:
        self.n = state[0]
        self.training = state[1]
        while self.n > 0:
            self.n = self.n + 1


class Plain(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(64, 64)

    def forward(self, x):
        return torch.relu(self.lin(x))


def rewrite(src, dst, edit):
    """Copies archive `src` to `dst`, passing each record's name and bytes through edit(name, data) -> data."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info, data)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    victim = os.path.join(out, "victim.bin")
    with open(victim, "wb") as f:
        f.write(torch.arange(4, dtype=torch.float32).numpy().tobytes())
    torch.jit.script(Reader(victim)).save(os.path.join(out, "reads_a_file.pt"))
    torch.jit.script(Looper()).save(os.path.join(out, "loops_at_load.pt"))
    # Not TorchScript at all: what users bring by mistake.
    lin = torch.nn.Linear(4, 4)
    torch.save(lin.state_dict(), os.path.join(out, "state_dict.pt"))
    torch.save(lin, os.path.join(out, "pickled_module.pt"))
    torch.export.save(torch.export.export(lin, (torch.randn(1, 4),)), os.path.join(out, "exported.pt2"))
    plain = os.path.join(out, "plain.pt")
    torch.jit.script(Plain()).save(plain)

    def custom_op(name, data):  # an op of another library loaded in the process
        return data.replace(b"torch.relu(", b"ops.debugprims.load_tensor(") if name.endswith("code/__torch__.py") else data
    rewrite(plain, os.path.join(out, "foreign_op.pt"), custom_op)

    def save_op(name, data):  # aten::save writes a file
        return data.replace(b"torch.relu(", b"torch.save(") if name.endswith("code/__torch__.py") else data
    rewrite(plain, os.path.join(out, "saves_a_file.pt"), save_op)

    def in_string(name, data):  # the words in a string literal or comment are not a call
        if name.endswith("code/__torch__.py"):
            return data.replace(b"    return torch.relu(", b"    # torch.save(x) would be refused\n    return torch.relu(")
        return data
    rewrite(plain, os.path.join(out, "mentions_save_in_a_comment.pt"), in_string)

    # Stored tensor bytes changed after the CRC was written: zipfile writes the CRC of what it is given, so the
    # byte is flipped in the finished file, inside the weight record's data.
    blob = bytearray(open(plain, "rb").read())
    with zipfile.ZipFile(plain) as z:
        weight = next(i for i in z.infolist() if "/data/" in i.filename and i.file_size >= 64 * 64 * 4)
    name_len, extra_len = struct.unpack("<HH", blob[weight.header_offset + 26:weight.header_offset + 30])
    blob[weight.header_offset + 30 + name_len + extra_len + 100] ^= 0xFF
    open(os.path.join(out, "crc_mismatch.pt"), "wb").write(bytes(blob))

    def short_weight(name, data):  # the weight's record holds fewer bytes than the pickle's tensor needs
        return data[: len(data) // 2] if "/data/" in name and len(data) >= 64 * 64 * 4 else data
    rewrite(plain, os.path.join(out, "short_record.pt"), short_weight)

    # Pickles that are valid opcode by opcode but pathological: a million nested 1-tuples (freeing them recursed a
    # million frames deep, in Joule's check and in LibTorch's unpickler), and a 16 MiB string recalled from the
    # memo 4M times (each recall copied it: 64 TiB). Deflated, both are small files.
    def nested_pickle(name, data):
        return b"\x80\x02N" + b"\x85" * (1 << 20) + b"." if name.endswith("/data.pkl") else data
    def recalled_pickle(name, data):
        if not name.endswith("/data.pkl"):
            return data
        return b"\x80\x02X" + struct.pack("<I", 16 << 20) + b"a" * (16 << 20) + b"q\x00" + b"h\x00" * ((1 << 22) + 8) + b"."
    for fixture, edit in (("pickle_nested", nested_pickle), ("pickle_recalled", recalled_pickle)):
        with zipfile.ZipFile(plain) as zin, zipfile.ZipFile(os.path.join(out, fixture + ".pt"), "w", zipfile.ZIP_DEFLATED) as zout:
            for info in zin.infolist():
                zout.writestr(info.filename, edit(info.filename, zin.read(info.filename)))

    # A zip bomb's header: the code record's directory entry claims 2 GiB from a few hundred deflated bytes.
    blob = bytearray(open(plain, "rb").read())
    pos = 0
    while True:
        pos = blob.index(b"PK\x01\x02", pos)
        n = struct.unpack("<H", blob[pos + 28:pos + 30])[0]
        if blob[pos + 46:pos + 46 + n].endswith(b"code/__torch__.py"):
            break
        pos += 4
    blob[pos + 24:pos + 28] = struct.pack("<I", 0x7FFFFFFF)
    open(os.path.join(out, "bomb_header.pt"), "wb").write(bytes(blob))

    # Archive-carried workloads (joule/workload.json), which every measuring command runs, inspect included: 2e9
    # timed runs, inputs of 10 GB from a 20 KB file, and a field of the wrong type.
    def with_workload(name, workload):
        dst = os.path.join(out, name + ".pt")
        shutil.copyfile(plain, dst)
        with zipfile.ZipFile(dst, "a") as z:
            z.writestr("plain/extra/joule/workload.json", json.dumps(workload))
    with_workload("workload_reps", {"inputs": ["1x64"], "reps": 2000000000})
    with_workload("workload_huge", {"inputs": ["f32:50000x50000"]})
    with_workload("workload_many_dims", {"inputs": ["1x1x1x1x1x1x1x1x1x64"]})
    with_workload("workload_bad_type", {"inputs": ["1x64"], "reps": "many"})
    def with_provenance(name, provenance):
        dst = os.path.join(out, name + ".pt")
        shutil.copyfile(plain, dst)
        with zipfile.ZipFile(dst, "a") as z:
            z.writestr("plain/extra/joule/provenance.json", json.dumps(provenance))
    with_provenance("provenance_bad", {"passes": 5})
    with_workload("workload_escape", {"inputs": ["\u001b]0;owned\u0007\u001b[2J1x64"]})

    # A weights-only folder whose tensor name carries terminal escapes (window title, clear screen) and whose
    # entry is invalid, so the name is echoed in the error.
    d = os.path.join(out, "escape_dir")
    os.makedirs(d, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"]
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"model_type": "bert", "vocab_size": len(vocab), "hidden_size": 8, "num_hidden_layers": 1,
                   "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 16}, f)
    header = json.dumps({"\x1b]0;owned\x07\x1b[2Jembeddings.word_embeddings.weight":
                         {"dtype": "Q9", "shape": [1], "data_offsets": [0, 4]}}).encode()
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + b"\0" * 4)


if __name__ == "__main__":
    main()
