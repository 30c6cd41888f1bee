"""Edit an ONNX model file in place, keeping where its weights live.

A graph's weights are inside the .onnx file or, past protobuf's 2 GB limit, in one external
data file next to it. The post-build edits (`shared_input_matmuls`, `draft_heads`) load the
model with every weight in memory, change the graph, and write it back the same way.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def load_model(model_file: Path):
    """(the model with all its weights in memory, its external data file's name or None)."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    model = onnx.load(str(model_file), load_external_data=False)
    external = external_location(model)
    if external is not None:
        load_external_data_for_model(model, str(Path(model_file).parent))
    return model, external


def replace_model(model, model_file: Path, external: str | None) -> None:
    """Write `model` over `model_file` (weights in `external` when not None): written in a
    scratch folder beside it first and moved over the old files, so a crash while writing
    leaves the old model whole (onnx would also append to an existing data file)."""
    import onnx

    model_file = Path(model_file)
    with tempfile.TemporaryDirectory(dir=model_file.parent, prefix=".edit-") as scratch:
        written = Path(scratch) / model_file.name
        onnx.save_model(
            model,
            str(written),
            save_as_external_data=external is not None,
            all_tensors_to_one_file=True,
            location=external or f"{model_file.name}.data",
        )
        if external is not None:
            os.replace(Path(scratch) / external, model_file.parent / external)
        os.replace(written, model_file)


def external_location(model) -> str | None:
    """The file name the graph keeps its weights in, or None when they are inside it."""
    for init in model.graph.initializer:
        for entry in init.external_data:
            if entry.key == "location":
                return entry.value
    return None
