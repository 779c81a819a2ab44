#!/usr/bin/env python3
"""Writes the graph models of this folder (PyTorch exports) and their reference outputs. Run once,
from this folder:

    python3 -m venv /tmp/torch-venv && /tmp/torch-venv/bin/pip install torch==1.13.1 \
        onnx==1.13.1 onnxruntime==1.26.0 "numpy<2"
    /tmp/torch-venv/bin/python make-graph-fixtures.py

Each model is defined in PyTorch, exported with `torch.onnx.export` (opset 13, a dynamic batch
axis, as a user would export it) in evaluation mode, and run by onnxruntime on digits of the
bundled MNIST test set (`common/data/mnist`, pixels / 255). Each is first trained briefly on the
bundled training digits (`STEPS` Adam steps of batches of 64 from PyTorch's initialisers and a
fixed seed), so its outputs have clear maxima and its batch norms real statistics (folding and
affine nodes are exercised with them).

- `resnet8.onnx`: a ResNet for 1x28x28 (torchvision's BasicBlock layout): a 3x3 stem with batch
  norm and ReLU, max pooling 3/2 padded 1, three stages of one basic block (16, 32 and 64
  channels, the last two strided with a 1x1 projection shortcut), global average pooling, a
  linear head. Residual `Add`s, batch norms folded into their convolutions.
- `densenet2.onnx`: a two-block DenseNet: each block two BN-ReLU-Conv3x3 layers (growth 8)
  whose outputs are concatenated to their inputs, a BN-ReLU-Conv1x1-AvgPool transition. The
  batch norms read concatenations, so they import as affine nodes.
- `mobilenetv2-block.onnx`: a strided stem with ReLU6, one inverted residual block (1x1 expand,
  3x3 depthwise, 1x1 project, residual `Add`), global pooling and a head.
- `ops-graph.onnx`: LeakyReLU, Tanh, average pooling padded without counting the padding, a
  dilated grouped convolution.
- `mobilenetv3-ops.onnx`: Hardswish, a Hardsigmoid gate multiplied into its input, a
  difference, global max pooling.

`<model>.reference.json` holds the chosen test digits (their two largest outputs at least
`MARGIN` apart, so a fixed-point argmax must agree) and onnxruntime's outputs for them.

`resnet18 PATH` (as the arguments) also writes torchvision's ResNet-18 (its `resnet18` module, written out here
because torchvision 0.14.1, the release beside torch 1.13.1, has no wheel for Python 3.11:
the same modules in the same order, so the same export) with random weights and non-trivial
batch-norm statistics, on 3x32x32 inputs with 10 classes (45 MB, not committed), and
`PATH.reference.json` with onnxruntime's logits for 4 seeded random inputs.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
MNIST = HERE.parent.parent.parent / "common" / "data" / "mnist"
OPSET = 13
MARGIN = 0.1
SAMPLES = 8
CANDIDATES = 1000

torch.manual_seed(20261208)


STEPS = 300


class V3Ops(nn.Module):
    """MobileNetV3's operators: Hardswish, a Hardsigmoid gate multiplied in, a difference,
    global max pooling."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(1, 32, 3, 2), nn.Hardswish(),
                                  *conv_bn(32, 32, 3, 2), nn.Hardswish())
        self.gate = nn.Sequential(nn.Conv2d(32, 32, 1), nn.Hardsigmoid())
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.stem(x)
        y = x * self.gate(x)
        return self.fc(torch.flatten(self.pool(y - x), 1))


def digits(split):
    images = (MNIST / f"{split}-images-idx3-ubyte").read_bytes()[16:]
    labels = (MNIST / f"{split}-labels-idx1-ubyte").read_bytes()[8:]
    x = np.frombuffer(images, dtype=np.uint8).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    return x, np.frombuffer(labels, dtype=np.uint8)


def trained(model):
    """`STEPS` Adam steps on the training digits, then evaluation mode."""
    x, y = digits("train")
    g = torch.Generator().manual_seed(11)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    with torch.enable_grad():
        for _ in range(STEPS):
            idx = torch.randint(0, len(x), (64,), generator=g).numpy()
            loss = nn.functional.cross_entropy(model(torch.from_numpy(x[idx])),
                                               torch.from_numpy(y[idx].astype(np.int64)))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def statistics(model):
    """Non-trivial batch-norm statistics (for an untrained model), then evaluation mode."""
    g = torch.Generator().manual_seed(7)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=g) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
    return model.eval()


def conv_bn(cin, cout, k, stride=1, groups=1):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = conv_bn(cin, cout, 3, stride)
        self.conv2, self.bn2 = conv_bn(cout, cout, 3)
        self.relu = nn.ReLU()
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(*conv_bn(cin, cout, 1, stride))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.down is None else self.down(x)
        return self.relu(out + shortcut)


class ResNet8(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(1, 16, 3), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        self.layers = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2),
                                    BasicBlock(32, 64, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.pool(self.layers(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(cin, growth, 3, 1, 1, bias=False)

    def forward(self, x):
        return torch.cat([x, self.conv(self.relu(self.bn(x)))], 1)


class DenseNet2(nn.Module):
    def __init__(self, growth=8):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
        self.block1 = nn.Sequential(DenseLayer(16, growth), DenseLayer(16 + growth, growth))
        self.transition = nn.Sequential(nn.BatchNorm2d(32), nn.ReLU(),
                                        nn.Conv2d(32, 16, 1, bias=False), nn.AvgPool2d(2))
        self.block2 = nn.Sequential(DenseLayer(16, growth), DenseLayer(16 + growth, growth))
        self.head = nn.Sequential(nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.block2(self.transition(self.block1(self.stem(x))))
        return self.fc(torch.flatten(self.head(x), 1))


class InvertedResidual(nn.Module):
    def __init__(self, c, expand):
        super().__init__()
        hidden = c * expand
        self.body = nn.Sequential(*conv_bn(c, hidden, 1), nn.ReLU6(),
                                  *conv_bn(hidden, hidden, 3, groups=hidden), nn.ReLU6(),
                                  *conv_bn(hidden, c, 1))

    def forward(self, x):
        return x + self.body(x)


class MobileNetV2Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(1, 16, 3, 2), nn.ReLU6())
        self.block = InvertedResidual(16, 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.block(self.stem(x))), 1))


class OpsGraph(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, 1, 1)
        self.leaky = nn.LeakyReLU(0.1)
        self.pool = nn.AvgPool2d(3, 2, 1, count_include_pad=False)
        self.dilated = nn.Conv2d(8, 8, 3, 1, 2, dilation=2, groups=2)
        self.fc = nn.Linear(8 * 14 * 14, 10)

    def forward(self, x):
        x = self.pool(self.leaky(self.conv(x)))
        x = torch.tanh(self.dilated(x)) + x
        return self.fc(x.view(x.size(0), -1))


def export(model, path, shape):
    dummy = torch.zeros(2, *shape)
    torch.onnx.export(model, dummy, str(path), opset_version=OPSET, input_names=["image"],
                      output_names=["logits"],
                      dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}})
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def reference(name, model, x, labels):
    path = HERE / f"{name}.onnx"
    export(model, path, [1, 28, 28])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"image": x[:CANDIDATES]})[0]
    with torch.no_grad():
        torch_out = model(torch.from_numpy(x[:CANDIDATES])).numpy()
    assert np.abs(out - torch_out).max() < 1e-4, f"{name}: onnxruntime differs from torch"
    top = np.sort(out, axis=1)[:, ::-1]
    chosen = [i for i in range(len(out)) if top[i, 0] - top[i, 1] >= MARGIN][:SAMPLES]
    assert len(chosen) == SAMPLES, f"{name}: too few inputs with a clear argmax"
    ref = {
        "model": f"{name}.onnx",
        "softmax_output": False,
        "input_shape": [1, 28, 28],
        "test_indices": chosen,
        "labels": [int(labels[i]) for i in chosen],
        "outputs": [[float(v) for v in out[i]] for i in chosen],
        "producer": f"torch {torch.__version__}, onnx {onnx.__version__}, "
                    f"onnxruntime {ort.__version__}, opset {OPSET}",
    }
    (HERE / f"{name}.reference.json").write_text(json.dumps(ref) + "\n")
    params = sum(p.numel() for p in model.parameters())
    accuracy = float((out.argmax(1) == labels[:CANDIDATES]).mean())
    print(f"{name}.onnx: {path.stat().st_size} bytes, {params} parameters, accuracy on "
          f"{CANDIDATES} test digits {accuracy:.3f}, inputs {chosen}")


class TorchvisionBasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock."""

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class TorchvisionResNet18(nn.Module):
    """torchvision.models.resnet18: the stem, four stages of two basic blocks, pooling, fc."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64, 1)
        self.layer2 = self._make_layer(128, 2)
        self.layer3 = self._make_layer(256, 2)
        self.layer4 = self._make_layer(512, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def _make_layer(self, planes, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [TorchvisionBasicBlock(self.inplanes, planes, stride, downsample),
                  TorchvisionBasicBlock(planes, planes)]
        self.inplanes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(path):
    model = statistics(TorchvisionResNet18(num_classes=10))
    export(model, Path(path), [3, 32, 32])
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(5)).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"image": x})[0]
    ref = {"inputs": [[float(v) for v in row.ravel()] for row in x],
           "outputs": [[float(v) for v in row] for row in out]}
    Path(f"{path}.reference.json").write_text(json.dumps(ref) + "\n")
    params = sum(p.numel() for p in model.parameters())
    print(f"{path}: ResNet-18, {params} parameters")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "resnet18":
        resnet18(sys.argv[2])
        return
    x, labels = digits("test")
    for name, model in [("resnet8", ResNet8()), ("densenet2", DenseNet2()),
                        ("mobilenetv2-block", MobileNetV2Block()), ("ops-graph", OpsGraph()),
                        ("mobilenetv3-ops", V3Ops())]:
        reference(name, trained(model), x, labels)


if __name__ == "__main__":
    with torch.no_grad():
        main()
