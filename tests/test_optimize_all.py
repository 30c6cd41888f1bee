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


def test_fused_variants_get_the_draft_table_of_the_adapters_training_data(tiny_model_dir, tmp_path):
    import shutil

    from tuneloop.errors import UsageError
    from tuneloop.optimize.cli import draft
    from tuneloop.optimize.ngram_draft import DraftOptions, NgramDraft, fused_variants
    from tuneloop.optimize.pipeline import _add_drafts, _training_file

    data = tmp_path / "train.jsonl"
    answer = {"role": "assistant", "content": '{"category": "billing"}'}
    rows = [{"messages": [{"role": "user", "content": f"ticket {i}"}, answer]} for i in range(5)]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "training_config.json").write_text(json.dumps({"data": str(data)}))
    out = tmp_path / "optimized"
    for name in ("fused-int8", "onnx-int8"):
        shutil.copytree(tiny_model_dir, out / name)
    (out / "fused-int8" / "genai_config.json").write_text("{}")

    # The copied tiny model is no fused graph to run: the data's answers, no draft heads.
    from_data = DraftOptions(model_answers=0, heads=False)
    _add_drafts(out, _training_file(adapter), from_data)
    assert NgramDraft.load(out / "fused-int8").source["examples"] == 5
    assert NgramDraft.load(out / "onnx-int8") is None, "only fused variants speculate"
    assert _training_file(tmp_path / "no-adapter") is None

    assert fused_variants(out) == [out / "fused-int8"] == fused_variants(out / "fused-int8")
    with pytest.raises(UsageError, match="no fused variant"):
        draft(model=out / "onnx-int8", data=data, options=DraftOptions())
    options = DraftOptions(min_count=5, model_answers=0, heads=False)
    assert draft(model=out, data=data, options=options) == 0
    assert NgramDraft.load(out / "fused-int8").source["min_count"] == 5


def test_nothing_to_export_is_refused_before_the_output_folder_is_touched(tmp_path, monkeypatch):
    from tuneloop.errors import UsageError
    from tuneloop.optimize import pipeline

    monkeypatch.setattr(pipeline, "_fused_available", lambda: False)
    out = tmp_path / "optimized"
    out.mkdir()
    (out / "keep.txt").write_text("an earlier run")
    plan = pipeline.Plan(methods=("int8",), optimum=False)
    with pytest.raises(UsageError, match="nothing to export: --no-optimum needs the fused graph"):
        pipeline.optimize_all(tmp_path / "adapter", out, plan=plan, force=True)
    assert (out / "keep.txt").read_text() == "an earlier run"
