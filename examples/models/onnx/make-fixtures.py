#!/usr/bin/env python3
"""Writes the ONNX models of this folder and their reference outputs. Run once, from this folder:

    python3 -m venv /tmp/onnx-venv && /tmp/onnx-venv/bin/pip install onnx==1.23.2 \
        onnxruntime==1.32.0 numpy==2.4.6
    /tmp/onnx-venv/bin/python make-fixtures.py

The models are built node by node with the `onnx` package (as an exporter would write them, no
training framework needed) with He-uniform weights from a fixed seed, and checked with
`onnx.checker`. Each `<model>.reference.json` names a few digits of the bundled MNIST test set
(`common/data/mnist`, by index; pixels / 255, as Tessera reads them) and holds the outputs
onnxruntime gives for them: the reference Tessera's importer is tested against
(`tests/tests/onnx.rs`).

- `mnist-mlp.onnx`: Flatten, Gemm (transB = 1, as PyTorch exports), BatchNormalization (folded
  into the Gemm by the importer), Relu, Gemm, Softmax as output.
- `mnist-cnn.onnx`: Conv 1-8 5x5 stride 2 pad 2, BatchNormalization (folded into the Conv),
  Relu, MaxPool 2, Reshape to [0, -1], Gemm 392-10, Softmax as output.
- `ops-cnn.onnx`: the other supported operators: Conv 3x3 pad 1, Sigmoid, AveragePool 2,
  GlobalAveragePool, `x.view(x.size(0), -1)` (Shape, Gather, Unsqueeze, Concat, Reshape),
  MatMul + Add, Relu, Gemm with alpha, beta and transB = 0.
- `tanh-mlp.onnx`: a Tanh node named `hidden_tanh`, which the importer refuses by name.

Inputs are chosen whose two largest outputs differ by at least `MARGIN` in logits, so that an
argmax under fixed-point MPC (logit error below 0.02, see the test) must agree with the reference.
"""

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
MNIST = HERE.parent.parent.parent / "common" / "data" / "mnist"
OPSET = 17
MARGIN = 0.1
SAMPLES = 8
rng = np.random.default_rng(20261123)


def he(shape, fan_in):
    bound = np.sqrt(6.0 / fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def small(shape, scale=0.1):
    return rng.uniform(-scale, scale, size=shape).astype(np.float32)


def batch_norm(name, x, y, channels):
    """A BatchNormalization node with non-trivial statistics, and its initializers."""
    inits = [
        numpy_helper.from_array(rng.uniform(0.5, 1.5, channels).astype(np.float32), f"{name}_scale"),
        numpy_helper.from_array(small(channels), f"{name}_bias"),
        numpy_helper.from_array(small(channels, 0.2), f"{name}_mean"),
        numpy_helper.from_array(rng.uniform(0.5, 2.0, channels).astype(np.float32), f"{name}_var"),
    ]
    node = helper.make_node(
        "BatchNormalization",
        [x, f"{name}_scale", f"{name}_bias", f"{name}_mean", f"{name}_var"],
        [y],
        name=name,
        epsilon=1e-5,
    )
    return node, inits


def model(name, nodes, inits, output, out_width):
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])
    out = helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", out_width])
    graph = helper.make_graph(nodes, name, [image], [out], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 8
    m.producer_name = "tessera make-fixtures.py"
    onnx.checker.check_model(m, full_check=True)
    return m


def mlp():
    nodes, inits = [], []
    nodes.append(helper.make_node("Flatten", ["image"], ["flat"], name="flatten", axis=1))
    inits += [numpy_helper.from_array(he((64, 784), 784), "fc1_w"),
              numpy_helper.from_array(small(64), "fc1_b")]
    nodes.append(helper.make_node("Gemm", ["flat", "fc1_w", "fc1_b"], ["fc1"], name="fc1",
                                  transB=1))
    bn, bn_inits = batch_norm("bn1", "fc1", "bn1_out", 64)
    nodes.append(bn)
    inits += bn_inits
    nodes.append(helper.make_node("Relu", ["bn1_out"], ["act1"], name="relu1"))
    inits += [numpy_helper.from_array(he((10, 64), 64), "fc2_w"),
              numpy_helper.from_array(small(10), "fc2_b")]
    nodes.append(helper.make_node("Gemm", ["act1", "fc2_w", "fc2_b"], ["logits"], name="fc2",
                                  transB=1))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax",
                                  axis=1))
    return model("mnist-mlp", nodes, inits, "probabilities", 10), True


def cnn():
    nodes, inits = [], []
    inits += [numpy_helper.from_array(he((8, 1, 5, 5), 25), "conv1_w"),
              numpy_helper.from_array(small(8), "conv1_b")]
    nodes.append(helper.make_node("Conv", ["image", "conv1_w", "conv1_b"], ["conv1"],
                                  name="conv1", kernel_shape=[5, 5], strides=[2, 2],
                                  pads=[2, 2, 2, 2]))
    bn, bn_inits = batch_norm("bn1", "conv1", "bn1_out", 8)
    nodes.append(bn)
    inits += bn_inits
    nodes.append(helper.make_node("Relu", ["bn1_out"], ["act1"], name="relu1"))
    nodes.append(helper.make_node("MaxPool", ["act1"], ["pool1"], name="pool1",
                                  kernel_shape=[2, 2], strides=[2, 2]))
    inits.append(numpy_helper.from_array(np.array([0, -1], dtype=np.int64), "flat_shape"))
    nodes.append(helper.make_node("Reshape", ["pool1", "flat_shape"], ["flat"], name="flatten"))
    inits += [numpy_helper.from_array(he((10, 392), 392), "fc_w"),
              numpy_helper.from_array(small(10), "fc_b")]
    nodes.append(helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc",
                                  transB=1))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax",
                                  axis=1))
    return model("mnist-cnn", nodes, inits, "probabilities", 10), True


def ops():
    nodes, inits = [], []
    inits += [numpy_helper.from_array(he((4, 1, 3, 3), 9), "conv_w"),
              numpy_helper.from_array(small(4), "conv_b")]
    nodes.append(helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["conv"], name="conv",
                                  kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Sigmoid", ["conv"], ["sig"], name="sigmoid"))
    nodes.append(helper.make_node("AveragePool", ["sig"], ["avg"], name="avgpool",
                                  kernel_shape=[2, 2], strides=[2, 2]))
    nodes.append(helper.make_node("GlobalAveragePool", ["avg"], ["gap"], name="gap"))
    # `x.view(x.size(0), -1)` as PyTorch's TorchScript exporter writes it.
    inits += [numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
              numpy_helper.from_array(np.array([0], dtype=np.int64), "axes0"),
              numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus_one")]
    nodes.append(helper.make_node("Shape", ["gap"], ["gap_shape"], name="shape"))
    nodes.append(helper.make_node("Gather", ["gap_shape", "zero"], ["batch"], name="gather",
                                  axis=0))
    nodes.append(helper.make_node("Unsqueeze", ["batch", "axes0"], ["batch1"], name="unsqueeze"))
    nodes.append(helper.make_node("Concat", ["batch1", "minus_one"], ["target"], name="concat",
                                  axis=0))
    nodes.append(helper.make_node("Reshape", ["gap", "target"], ["flat"], name="view"))
    inits += [numpy_helper.from_array(he((4, 16), 4), "mm_w"),
              numpy_helper.from_array(small(16), "mm_b")]
    nodes.append(helper.make_node("MatMul", ["flat", "mm_w"], ["mm"], name="matmul"))
    nodes.append(helper.make_node("Add", ["mm", "mm_b"], ["mm_add"], name="add"))
    nodes.append(helper.make_node("Relu", ["mm_add"], ["act"], name="relu"))
    inits += [numpy_helper.from_array(he((16, 3), 16), "out_w"),
              numpy_helper.from_array(small(3), "out_b")]
    nodes.append(helper.make_node("Gemm", ["act", "out_w", "out_b"], ["scores"], name="scores",
                                  alpha=2.0, beta=0.5, transB=0))
    return model("ops-cnn", nodes, inits, "scores", 3), False


def tanh():
    nodes, inits = [], []
    nodes.append(helper.make_node("Flatten", ["image"], ["flat"], name="flatten", axis=1))
    inits += [numpy_helper.from_array(he((16, 784), 784), "fc1_w"),
              numpy_helper.from_array(small(16), "fc1_b")]
    nodes.append(helper.make_node("Gemm", ["flat", "fc1_w", "fc1_b"], ["fc1"], name="fc1",
                                  transB=1))
    nodes.append(helper.make_node("Tanh", ["fc1"], ["act"], name="hidden_tanh"))
    inits += [numpy_helper.from_array(he((10, 16), 16), "fc2_w"),
              numpy_helper.from_array(small(10), "fc2_b")]
    nodes.append(helper.make_node("Gemm", ["act", "fc2_w", "fc2_b"], ["logits"], name="fc2",
                                  transB=1))
    return model("tanh-mlp", nodes, inits, "logits", 10)


def test_digits():
    images = (MNIST / "test-images-idx3-ubyte").read_bytes()[16:]
    labels = (MNIST / "test-labels-idx1-ubyte").read_bytes()[8:]
    x = np.frombuffer(images, dtype=np.uint8).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    return x, np.frombuffer(labels, dtype=np.uint8)


def margin(row, softmax):
    top = np.sort(np.log(row) if softmax else row)[::-1]
    return float(top[0] - top[1])


def reference(name, m, softmax, x, labels):
    path = HERE / f"{name}.onnx"
    onnx.save(m, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"image": x[:200]})[0]
    chosen = [i for i in range(len(out)) if margin(out[i], softmax) >= MARGIN][:SAMPLES]
    assert len(chosen) == SAMPLES, f"{name}: too few inputs with a clear argmax"
    ref = {
        "model": f"{name}.onnx",
        "softmax_output": softmax,
        "input_shape": [1, 28, 28],
        "test_indices": chosen,
        "labels": [int(labels[i]) for i in chosen],
        "outputs": [[float(v) for v in out[i]] for i in chosen],
        "producer": f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, opset {OPSET}",
    }
    (HERE / f"{name}.reference.json").write_text(json.dumps(ref) + "\n")
    print(f"{name}.onnx: {path.stat().st_size} bytes, inputs {chosen}")


def main():
    x, labels = test_digits()
    for name, (m, softmax) in [("mnist-mlp", mlp()), ("mnist-cnn", cnn()), ("ops-cnn", ops())]:
        reference(name, m, softmax, x, labels)
    onnx.save(tanh(), HERE / "tanh-mlp.onnx")
    print("tanh-mlp.onnx")


if __name__ == "__main__":
    main()
