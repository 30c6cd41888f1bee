"""Write trained draft heads into a fused graph (and read what the heads need from it).

The heads read what the graph already computes at the positions whose logits it returns
(`logits_positions`): the final norm's output and the logits. In the graph:

    chosen = ArgMax(logits)                                       the token the model picks
    guess1 = head1(Concat(hidden, Embed(chosen)))                 the token after `chosen`
    guess2 = head2(Concat(hidden, Embed(chosen), Embed(guess1)))  the token after that
    head(x) = ArgMax / ReduceMax(Softmax(Linear(SiLU(Linear(x)))))  over the heads' vocabulary

and two new outputs: `draft_ids` int64 [batch, positions, 3] = (chosen, guess1, guess2), -1
for a guess outside the heads' vocabulary, and `draft_probs` float [batch, positions, 2].
`Embed` is a Gather from the graph's own token embedding. Nothing on the way to `logits`
changes, so the logits stay bit-identical; the heads' four MatMuls are quantized to 8 bits
in blocks of 32 (MatMulNBits), which costs the guesses nothing measurable and reads a
quarter of the bytes per pass.
"""

from __future__ import annotations

import numpy as np

from tuneloop.errors import ModelLoadError

PREFIX = "/draft_heads/"
DRAFT_IDS = "draft_ids"
DRAFT_PROBS = "draft_probs"


def logits_input(graph) -> str:
    """The hidden states the output projection reads (after `logits_positions`' Gather)."""
    projection = next((n for n in graph.node if "logits" in n.output), None)
    if projection is None:
        raise ModelLoadError("the graph has no `logits` output")
    return projection.input[0]


def embedding_table(model) -> np.ndarray:
    """The token embedding [vocab, hidden] that the graph's first Gather reads: an
    initializer, or the Transpose of one (the untied output projection's weight). `model`
    is loaded with its weights (onnx.load reads external data by default)."""
    from onnx import numpy_helper

    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    producers = {out: n for n in graph.node for out in n.output}
    name = embedding_name(graph)
    if name in initializers:
        return numpy_helper.to_array(initializers[name])
    source = producers.get(name)
    if source is not None and source.op_type == "Transpose" and source.input[0] in initializers:
        return numpy_helper.to_array(initializers[source.input[0]]).T
    raise ModelLoadError(f"cannot find the token embedding behind {name}")


def embedding_name(graph) -> str:
    """The name of the embedding tensor [vocab, hidden] the first Gather reads."""
    gather = next((n for n in graph.node if n.op_type == "Gather" and "input_ids" in n.input), None)
    if gather is None:
        raise ModelLoadError("the graph reads no `input_ids` through a Gather")
    return gather.input[0]


def remove_heads(graph) -> None:
    """Take earlier heads out of a graph (nodes, weights, outputs)."""
    for node in [n for n in graph.node if n.name.startswith(PREFIX)]:
        graph.node.remove(node)
    for init in [i for i in graph.initializer if i.name.startswith(PREFIX)]:
        graph.initializer.remove(init)
    for output in [o for o in graph.output if o.name in (DRAFT_IDS, DRAFT_PROBS)]:
        graph.output.remove(output)


def add_heads(graph, heads) -> list[str]:
    """Append `heads` (a `draft_heads.DraftHeads`) to `graph`; the names of their MatMuls."""
    from onnx import TensorProto, helper

    remove_heads(graph)
    builder = _Builder()
    vocabulary = builder.constant("vocabulary", np.append(heads.vocabulary, -1).astype(np.int64))
    last_axis = builder.constant("last_axis", np.array([-1], dtype=np.int64))
    hidden, table = logits_input(graph), embedding_name(graph)
    chosen = builder.node("ArgMax", ["logits"], axis=-1, keepdims=1)
    embedded = builder.node("Gather", [table, builder.node("Squeeze", [chosen, last_axis])])
    features = builder.node("Concat", [hidden, embedded], axis=-1)
    guess1, prob1 = builder.head("head1", features, heads.layers[0], vocabulary, last_axis)
    guessed = builder.node("Gather", [table, builder.node("Squeeze", [guess1, last_axis])])
    features = builder.node("Concat", [hidden, embedded, guessed], axis=-1)
    guess2, prob2 = builder.head("head2", features, heads.layers[1], vocabulary, last_axis)
    builder.node("Concat", [chosen, guess1, guess2], axis=-1, output=DRAFT_IDS)
    builder.node("Concat", [prob1, prob2], axis=-1, output=DRAFT_PROBS)
    graph.node.extend(builder.nodes)
    graph.initializer.extend(builder.initializers)
    shape = ["batch_size", "logits_length"]
    graph.output.append(helper.make_tensor_value_info(DRAFT_IDS, TensorProto.INT64, [*shape, 3]))
    graph.output.append(helper.make_tensor_value_info(DRAFT_PROBS, TensorProto.FLOAT, [*shape, 2]))
    return builder.matmuls


class _Builder:
    """Nodes and weights named under PREFIX, in the order they are made."""

    def __init__(self) -> None:
        self.nodes, self.initializers, self.matmuls = [], [], []

    def constant(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(array, PREFIX + name))
        return PREFIX + name

    def node(self, op: str, inputs: list[str], output: str | None = None, **attributes) -> str:
        from onnx import helper

        name = f"{PREFIX}{op}_{len(self.nodes)}"
        output = output or f"{name}/output_0"
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, **attributes))
        if op == "MatMul":
            self.matmuls.append(name)
        return output

    def head(self, tag: str, features: str, layer: dict, vocabulary: str, last_axis: str):
        """Linear -> SiLU -> Linear, then the most likely class: (token id [.., 1], its
        probability [.., 1]); the last class is "no guess" (token -1)."""
        w1 = self.constant(f"{tag}/w1", layer["w1"])
        w2 = self.constant(f"{tag}/w2", layer["w2"])
        b1 = self.constant(f"{tag}/b1", layer["b1"])
        b2 = self.constant(f"{tag}/b2", layer["b2"])
        inner = self.node("Add", [self.node("MatMul", [features, w1]), b1])
        inner = self.node("Mul", [inner, self.node("Sigmoid", [inner])])
        scores = self.node("Add", [self.node("MatMul", [inner, w2]), b2])
        probability = self.node(
            "ReduceMax", [self.node("Softmax", [scores], axis=-1), last_axis], keepdims=1
        )
        index = self.node("ArgMax", [scores], axis=-1, keepdims=1)
        return self.node("Gather", [vocabulary, index], axis=0), probability
