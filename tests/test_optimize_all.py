"""`tuneloop optimize all` on a tiny model: the folder contract that `serve --model-dir` reads."""

from __future__ import annotations

import json

import pytest
from optimize_helpers import adapter_manifest, make_adapter, write_demo_subset

pytest.importorskip("onnxruntime")


@pytest.mark.slow  # one export and three verifications, about a minute
def test_all_writes_every_variant_a_summary_and_the_profile(tiny_model_dir, tmp_path):
    from tuneloop.base_model import load_model
    from tuneloop.optimize.artifacts import read_artifact, servable_variants
    from tuneloop.optimize.pipeline import Plan, optimize_all
    from tuneloop.optimize.verify import VerifyOptions

    adapter = make_adapter(
        load_model(str(tiny_model_dir)),
        tmp_path / "adapter",
        manifest=adapter_manifest(tiny_model_dir),
    )
    (adapter / "reference_profile.json").write_text('{"features": {}}')
    data = write_demo_subset(tmp_path / "val.jsonl", 4)
    out = tmp_path / "optimized"
    summary = optimize_all(
        adapter,
        out,
        data=data,
        plan=Plan(methods=("int8", "int4"), fused=False),
        options=VerifyOptions(samples=4, speed=False),
    )
    names = [row["variant"] for row in summary["rows"]]
    assert names == ["merged", "onnx-fp32", "onnx-int8", "onnx-int4"]
    assert json.loads((out / "summary.json").read_text())["recommended"] == summary["recommended"]
    assert (out / "summary.md").is_file() and (out / "summary.png").is_file()
    assert (out / "reference_profile.json").is_file()
    for row in summary["rows"][1:]:
        manifest = read_artifact(out / row["variant"])
        assert manifest["gate"]["status"] == row["gate"] in ("passed", "failed")
        assert (out / row["variant"] / "verify.json").is_file()
    passed = [r["variant"] for r in summary["rows"] if r["gate"] == "passed"]
    assert summary["recommended"] in passed
    assert servable_variants(out)[0] == summary["recommended"]
    assert set(servable_variants(out)) == {"merged", *passed}
