"""Logits only where they are needed: a post-build edit of the fused graph.

onnxruntime-genai's builder computes the output projection for every input position. For a
prompt that is wasted work: generation needs the logits of its last position only, and the
projection to a 49k vocabulary is a fifth of SmolLM2-135M's weights, so prefilling an 80-token
prompt spends ~20% of its time and writes 16 MB of logits nobody reads. The edit adds a graph
input, `logits_positions` (int64 [n], negative counts from the end, as numpy's), and gathers
those positions of the final hidden states before the projection:
- decoding and prefilling pass [-1] (the last position);
- teacher-forced scoring (perplexity, parity) passes every position.

The graph keeps its other inputs and outputs; `kv_slots.KVSlots` binds the new input when the
graph has it, so folders exported before this edit still load. onnxruntime-genai's own runtime
does not know the input (tuneloop does not use that runtime).
"""

from __future__ import annotations

from pathlib import Path

LOGITS_POSITIONS = "logits_positions"


def add_logits_positions(model_file: Path) -> bool:
    """Edit `model_file` (an .onnx file; external weight data is left as it is) in place;
    False when it already takes `logits_positions`."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(model_file), load_external_data=False)
    graph = model.graph
    if any(i.name == LOGITS_POSITIONS for i in graph.input):
        return False
    head = next(n for n in graph.node if "logits" in n.output)
    hidden = head.input[0]  # the final norm's output, [batch, sequence, hidden]
    picked = f"{hidden}/logits_positions"
    gather = helper.make_node(
        "Gather", [hidden, LOGITS_POSITIONS], [picked], name="/lm_head/Positions", axis=1
    )
    head.input[0] = picked
    graph.node.insert(list(graph.node).index(head), gather)
    graph.input.append(
        helper.make_tensor_value_info(LOGITS_POSITIONS, TensorProto.INT64, ["logits_length"])
    )
    logits = next(o for o in graph.output if o.name == "logits")
    logits.type.tensor_type.shape.dim[1].dim_param = "logits_length"
    onnx.save_model(model, str(model_file))
    return True
