"""The quality gate: metrics, thresholds, task accuracy, and `verify` passing and failing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from optimize_helpers import make_adapter, write_demo_subset

from tuneloop import cli
from tuneloop.optimize.gate import GateThresholds, judge
from tuneloop.optimize.quality import QualityReport, compare, summarize


class FixedLogits:
    """A stand-in model whose logits are given: for exact metric checks."""

    def __init__(self, logits: np.ndarray) -> None:
        self.logits = logits

    def sequence_logits(self, ids):
        return self.logits[: len(ids)]


def test_identical_models_agree_perfectly():
    from tuneloop.optimize.quality import Scored

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(12, 50))
    scored = [Scored(list(rng.integers(0, 50, 12)), 5)]
    report = compare(FixedLogits(logits), FixedLogits(logits.copy()), scored)
    assert report.positions == 7 and report.top1_agreement == 1.0
    assert abs(report.perplexity_change) < 1e-12 and report.mean_kl < 1e-12


def test_metrics_against_a_hand_computed_case():
    # Two positions. The reference puts p=0.5 on the target both times; the candidate 0.25.
    ref = [np.log([0.5, 0.5])]
    cand = [np.log([0.25, 0.25])]
    kls = [np.array([0.1, 0.3])]
    report = summarize([-ref[0]], [-cand[0]], kls, [np.array([True, False])])
    assert report.reference_perplexity == pytest.approx(2.0)
    assert report.candidate_perplexity == pytest.approx(4.0)
    assert report.perplexity_change == pytest.approx(1.0)
    assert report.mean_kl == pytest.approx(0.2) and report.max_kl == pytest.approx(0.3)
    assert report.top1_agreement == 0.5


def _quality(top1: float, ppl_change: float, kl: float = 0.0) -> QualityReport:
    return QualityReport(10, 100, 2.0, 2.0 * (1 + ppl_change), ppl_change, kl, kl, kl, top1)


def test_default_thresholds_follow_the_precision():
    gate = GateThresholds()
    assert gate.resolved("int8")["min_top1"] == 0.97
    assert gate.resolved("int8")["max_ppl_increase"] == 0.02
    assert gate.resolved("int4")["min_top1"] == 0.90
    assert gate.resolved("bnb-nf4")["max_ppl_increase"] == 0.08
    assert GateThresholds(min_top1=0.5).resolved("int4")["min_top1"] == 0.5


def test_judge_names_each_failure_and_by_how_much():
    limits = GateThresholds(max_kl=0.01).resolved("int8")
    assert judge(limits, _quality(0.99, 0.01), None) == []
    failures = judge(limits, _quality(0.95, 0.05, kl=0.02), {"reference": 0.9, "candidate": 0.8})
    assert len(failures) == 4
    assert "short by 0.0200" in failures[0] and "over by 3.00%" in failures[1]
    assert "mean KL" in failures[2] and "drop 0.100" in failures[3]


def test_bad_threshold_fails_before_any_model_loads(capsys):
    argv = ["optimize", "verify", "--reference", "r", "--candidate", "c", "--data", "d"]
    assert cli.main([*argv, "--min-top1", "1.5"]) == 2
    assert "--min-top1" in capsys.readouterr().err


@pytest.fixture(scope="module")
def variants(tiny_model_dir, smollm2_tokenizer, tmp_path_factory):
    """A merged tiny model, its fp32 export, and a "variant" that is another model entirely
    (what a broken quantizer or a wrong file would give)."""
    from conftest import build_tiny_llama

    from tuneloop.base_model import load_model
    from tuneloop.optimize.artifacts import write_artifact
    from tuneloop.optimize.export import export_onnx
    from tuneloop.optimize.merge import merge_adapter

    tmp = tmp_path_factory.mktemp("gate")
    adapter = make_adapter(load_model(str(tiny_model_dir)), tmp / "adapter")
    merged = merge_adapter(adapter, tmp / "out" / "merged", base=str(tiny_model_dir))
    onnx = export_onnx(merged, tmp / "out" / "onnx-fp32")[0]
    broken = tmp / "out" / "torch-int8"
    build_tiny_llama(smollm2_tokenizer, seed=7).save_pretrained(broken)
    smollm2_tokenizer.save_pretrained(broken)
    write_artifact(
        broken,
        name="x",
        variant="torch-int8",
        backend="torch",
        precision="int8",
        source={},
        extra={"task": {"label_field": "category"}},
    )
    return {"merged": merged, "onnx": onnx, "broken": broken, "data": tmp / "val.jsonl"}


def _verify(variants, candidate, *extra):
    write_demo_subset(variants["data"], 6)
    argv = ["optimize", "verify", "--reference", str(variants["merged"])]
    argv += ["--candidate", str(candidate), "--data", str(variants["data"]), *extra]
    return cli.main(argv)


def test_failed_gate_exits_1_writes_reports_and_is_never_served(variants, capsys):
    from tuneloop.optimize.artifacts import read_artifact, servable_variants

    assert _verify(variants, variants["broken"], "--no-speed") == 1
    assert "gate failed" in capsys.readouterr().out
    for name in ("verify.json", "verify.md", "verify.png"):
        assert (variants["broken"] / name).is_file()
    result = json.loads((variants["broken"] / "verify.json").read_text())
    assert result["gate"]["status"] == "failed" and result["gate"]["failures"]
    assert result["task"]["label_field"] == "category"
    manifest = read_artifact(variants["broken"])
    assert manifest["gate"]["status"] == "failed"
    assert manifest["gate"]["failures"] == result["gate"]["failures"]
    assert result["gate"]["thresholds"]["min_top1"] == 0.97  # the int8 default
    assert "torch-int8" not in servable_variants(variants["broken"].parent)
    assert "FAIL" in (variants["broken"] / "verify.md").read_text()


@pytest.mark.slow  # profiles each model in a fresh process
def test_passing_candidate_with_speed_figures(variants, capsys):
    from tuneloop.optimize.artifacts import servable_variants

    assert _verify(variants, variants["onnx"], "--samples", "4", "--new-tokens", "4") == 0
    result = json.loads((variants["onnx"] / "verify.json").read_text())
    assert result["samples"] == 4 and result["gate"]["status"] == "passed"
    assert result["quality"]["top1_agreement"] > 0.99
    speed = result["speed"]
    for side in ("reference", "candidate"):
        assert set(speed[side]["decode_tokens_per_s"]) == {"1", "8"}
        assert speed[side]["peak_rss_mb"] > 0 and speed[side]["load_seconds"] > 0
    assert "onnx-fp32" in servable_variants(variants["onnx"].parent)


def test_samples_caps_every_part_that_scores(variants, tmp_path):
    """--samples limits the teacher-forced part and the answers for task accuracy alike."""
    task = write_demo_subset(tmp_path / "test.jsonl", 6)
    extra = ["--no-speed", "--samples", "3", "--task-data", str(task)]
    _verify(variants, variants["broken"], *extra)
    result = json.loads((variants["broken"] / "verify.json").read_text())
    assert result["samples"] == result["quality"]["examples"] == 3
    assert result["task"]["examples"] == 3
    assert result["task"]["data"] == str(task)
