"""Writes TorchScript test models made by real PyTorch, with reference inputs/outputs.

Each NAME.pt carries its workload (joule/workload.json) like a Joule-saved archive; NAME.io.pt holds the
input `x` and PyTorch's output `y` so the C++ tests can check LibTorch reproduces PyTorch exactly.
mlp_noworkload.pt has no workload, for the CLI's error path. cnn_traced.pt is a small CNN made by torch.jit.trace
(its convs are aten::_convolution), cnn_traced_noworkload.pt the same with no workload (a user's model),
cnn_pool.pt the same CNN scripted (aten::conv2d); forms_traced.pt / forms_scripted.pt hold conv3d, conv_transpose2d
and addmm.
"""
import json
import os
import sys

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.a = nn.Linear(d, hidden)
        self.b = nn.Linear(hidden, d)

    def forward(self, x):
        return x + self.b(torch.nn.functional.gelu(self.a(x)))


class MLP(nn.Module):
    def __init__(self, d_in=64, d=96, hidden=256, d_out=10, blocks=2):
        super().__init__()
        self.fc_in = nn.Linear(d_in, d)
        self.blocks = nn.ModuleList([Block(d, hidden) for _ in range(blocks)])
        self.head = nn.Linear(d, d_out)

    def forward(self, x):
        x = torch.relu(self.fc_in(x))
        for blk in self.blocks:
            x = blk(x)
        return self.head(x)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv1d(32, 8, 1)
        self.fc = nn.Linear(8 * 64, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)  # 32 x 8 x 8
        x = self.conv3(x.flatten(2))                                     # 8 x 64
        return self.fc(x.flatten(1))


class PoolCNN(nn.Module):
    """A classifier as users write them: 3-channel stem, batch norm, pooling, flatten, linear head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.conv = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32, 64)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        x = torch.nn.functional.max_pool2d(x, 2)
        x = torch.relu(self.conv(x))
        x = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.head(torch.relu(self.fc1(x)))


class OtherForms(nn.Module):
    """The other weight-op forms the graph layer meets: conv3d, a transposed conv, addmm with a weight parameter."""

    def __init__(self):
        super().__init__()
        self.c3 = nn.Conv3d(2, 4, 3, padding=1)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.w = nn.Parameter(torch.randn(8, 5) * 0.3)
        self.b = nn.Parameter(torch.randn(5) * 0.1)

    def forward(self, x):
        x = torch.relu(self.c3(x)).flatten(1, 2)  # 2 x 16 x 8 x 8
        x = self.up(x).mean((2, 3))               # 2 x 8
        return torch.addmm(self.b, x, self.w)


class IO(nn.Module):
    def __init__(self, x, y):
        super().__init__()
        self.register_buffer("x", x)
        self.register_buffer("y", y)


def save(model, name, x, out, workload=True, trace=False):
    torch.manual_seed(0)
    model.eval()
    with torch.no_grad():
        # Randomise batch-norm statistics so the tests see non-trivial ones.
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        scripted = torch.jit.trace(model, x) if trace else torch.jit.script(model)
        y = scripted(x)
    extra = {}
    if workload:
        dtype = {torch.float32: "f32", torch.int64: "i64"}[x.dtype]
        spec = dtype + ":" + "x".join(str(d) for d in x.shape)
        extra["joule/workload.json"] = json.dumps({"inputs": [spec], "warmup": 2, "reps": 5})
    torch.jit.save(scripted, os.path.join(out, name + ".pt"), _extra_files=extra)
    torch.jit.save(torch.jit.script(IO(x, y)), os.path.join(out, name + ".io.pt"))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    save(MLP(), "mlp", torch.randn(8, 64), out)
    torch.manual_seed(0)
    save(MLP(), "mlp_noworkload", torch.randn(8, 64), out, workload=False)
    torch.manual_seed(1)
    save(CNN(), "cnn", torch.randn(2, 3, 16, 16), out)
    for name, trace, workload in (("cnn_traced", True, True), ("cnn_traced_noworkload", True, False),
                                  ("cnn_pool", False, True)):
        torch.manual_seed(3)
        save(PoolCNN(), name, torch.randn(4, 3, 16, 16), out, workload=workload, trace=trace)
    for name, trace in (("forms_traced", True), ("forms_scripted", False)):
        torch.manual_seed(4)
        save(OtherForms(), name, torch.randn(2, 2, 4, 8, 8), out, trace=trace)
    torch.manual_seed(2)
    enc = nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128, dropout=0.0, batch_first=True)
    save(enc, "encoder", torch.randn(2, 10, 64), out)
    print(f"wrote test models to {out}")


if __name__ == "__main__":
    main()
