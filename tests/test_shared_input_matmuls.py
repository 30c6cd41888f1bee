"""Merging MatMuls that read the same activation (the fused graph's gate and up projections)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tuneloop.optimize.shared_input_matmuls import merge_shared_input_matmuls  # noqa: E402


def _mlp_graph(rng) -> onnx.ModelProto:
    """x -> gate, up (same input) -> gate * up -> down; `up`'s weight also feeds an Add, so
    it must outlive the merge."""
    weights = {
        "gate.weight": rng.normal(size=(8, 12)).astype(np.float32),
        "up.weight": rng.normal(size=(8, 20)).astype(np.float32),
        "down.weight": rng.normal(size=(12, 8)).astype(np.float32),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "gate.weight"], ["g"], name="/mlp/gate_proj/MatMul"),
        helper.make_node("MatMul", ["x", "up.weight"], ["u"], name="/mlp/up_proj/MatMul"),
        helper.make_node("Slice", ["u", "zero", "twelve", "minus_one"], ["u12"], name="slice"),
        helper.make_node("Mul", ["g", "u12"], ["h"], name="mul"),
        helper.make_node("MatMul", ["h", "down.weight"], ["y"], name="/mlp/down_proj/MatMul"),
        helper.make_node("Add", ["up.weight", "up.weight"], ["twice_up"], name="reuse"),
    ]
    constants = {
        "zero": np.array([0], dtype=np.int64),
        "twelve": np.array([12], dtype=np.int64),
        "minus_one": np.array([-1], dtype=np.int64),
    }
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8]),
            helper.make_tensor_value_info("twice_up", TensorProto.FLOAT, [8, 20]),
        ],
        [numpy_helper.from_array(a, name) for name, a in {**weights, **constants}.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


@pytest.mark.parametrize("external", [False, True], ids=["weights-inside", "external-data"])
def test_merged_graph_gives_the_same_outputs_with_one_matmul(tmp_path, external):
    rng = np.random.default_rng(0)
    path = tmp_path / "model.onnx"
    onnx.save_model(
        _mlp_graph(rng),
        str(path),
        save_as_external_data=external,
        size_threshold=100,
        location="model.onnx.data",
    )
    x = rng.normal(size=(3, 8)).astype(np.float32)
    before = _run(path, x)

    assert merge_shared_input_matmuls(path) == 1
    graph = onnx.load(str(path)).graph
    matmuls = [n for n in graph.node if n.op_type == "MatMul"]
    assert len(matmuls) == 2, "gate and up became one, down stays"
    merged = next(n for n in matmuls if n.input[0] == "x")
    assert "gate_proj" in merged.name and "up_proj" in merged.name, "name patterns still match"
    assert "up.weight" in {i.name for i in graph.initializer}, "still read by another node"
    assert "gate.weight" not in {i.name for i in graph.initializer}
    for got, expected in zip(_run(path, x), before, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    if external:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.onnx.data"]

    assert merge_shared_input_matmuls(path) == 0, "nothing left to merge"


def test_matmuls_over_different_inputs_are_left_alone(tmp_path):
    weight = numpy_helper.from_array(np.ones((4, 4), dtype=np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["a", "w"], ["c"], name="first"),
            helper.make_node("MatMul", ["c", "w"], ["d"], name="second"),
        ],
        "chain",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("d", TensorProto.FLOAT, [1, 4])],
        [weight],
    )
    path = tmp_path / "chain.onnx"
    onnx.save_model(helper.make_model(graph, ir_version=10), str(path))
    before = path.read_bytes()
    assert merge_shared_input_matmuls(path) == 0
    assert path.read_bytes() == before
