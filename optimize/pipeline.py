"""`tuneloop optimize all`: merge -> export -> quantize -> verify each -> summary.

The output folder is the contract read by `tuneloop serve --model-dir` (DEVELOPERS.md):
`merged/` (the fp32 reference), one folder per variant with its manifest and gate verdict,
`summary.json|md|png` with `recommended` = the fastest variant (decode, batch 1) that passed,
and the adapter's `reference_profile.json` so drift monitoring works on the optimized model.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from tuneloop.errors import UsageError
from tuneloop.optimize.artifacts import check_out_dir, read_artifact, save_json
from tuneloop.optimize.gate import GateThresholds
from tuneloop.optimize.ngram_draft import DraftOptions, add_drafts, fused_variants
from tuneloop.optimize.verify import ReferenceCache, VerifyOptions, verify_candidate, weights_mb
from tuneloop.progress import Steps

log = logging.getLogger(__name__)

REFERENCE_PROFILE = "reference_profile.json"


@dataclass(frozen=True)
class Plan:
    """Which exports and quantizations `optimize all` makes."""

    methods: tuple[str, ...] = ("int8", "int4")
    fused: bool = True
    """Also build the fused graph (onnxruntime-genai's builder) and quantize it the same way."""
    optimum: bool = True
    """Export optimum's graph (the onnx-* variants, loadable by ORTModelForCausalLM)."""


def optimize_all(
    adapter: Path,
    out: Path,
    *,
    base: str | None = None,
    data: Path | None = None,
    plan: Plan = Plan(),
    thresholds: GateThresholds | None = None,
    options: VerifyOptions | None = None,
    force: bool = False,
    draft_data: Path | None = None,
    draft_options: DraftOptions | None = None,
) -> dict:
    from tuneloop.optimize.export import export_onnx
    from tuneloop.optimize.merge import merge_adapter
    from tuneloop.optimize.quantize import METHODS, TORCH_METHODS, QuantizeOptions, quantize_model

    out = Path(out)
    if unknown := [m for m in plan.methods if m not in METHODS]:
        raise UsageError(f"--methods {' '.join(unknown)}: choose from {', '.join(METHODS)}")
    fused = plan.fused and _fused_available()
    exports = ["onnx"] * plan.optimum + ["fused"] * fused
    if not exports:
        raise UsageError(
            "nothing to export: --no-optimum needs the fused graph (--fused, with "
            "onnxruntime-genai installed: pip install 'tuneloop[fused]')"
        )
    check_out_dir(out, force)
    data = data or _validation_file(Path(adapter))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    quantized = [
        (method, prefix)
        for method in plan.methods
        for prefix in (["torch"] if method in TORCH_METHODS else exports)
    ]
    draft_file = draft_data or _training_file(Path(adapter))
    # the merge, the exports, the quantizations, a verification of each variant, the drafts
    variant_count = len(exports) + len(quantized)
    steps = Steps("optimize all", 1 + variant_count * 2 + bool(fused and draft_file), log)
    with steps.step(f"merging {adapter}"):
        merged = merge_adapter(adapter, out / "merged", base)
    sources = {}
    for prefix in exports:
        with steps.step(f"exporting {prefix}-fp32"):
            fmt = "onnx-fused" if prefix == "fused" else "onnx"
            sources[prefix] = export_onnx(
                merged, out / f"{prefix}-fp32", parity_data=data, fmt=fmt
            )[0]
    variants = list(sources.values())
    for method, prefix in quantized:
        with steps.step(f"quantizing {prefix}-{method}"):
            if prefix == "torch":  # bitsandbytes quantizes the merged torch model
                variants.append(quantize_model(merged, method, out / method))
            else:
                target = out / f"{prefix}-{method}"
                variants.append(quantize_model(sources[prefix], method, target, QuantizeOptions()))
    cache, rows = ReferenceCache(), []
    for variant in variants:
        with steps.step(f"verifying {variant.name}"):
            result = verify_candidate(merged, variant, data, thresholds, options, cache)
            rows.append(summary_row(variant, result))
    rows.insert(0, reference_row(merged, cache, rows))
    # After verifying: the summary's speeds stay those of one token per pass, the engine's own.
    if fused and draft_file:
        with steps.step("drafts for the fused variants"):
            _add_drafts(out, draft_file, draft_options)
    elif fused:
        _add_drafts(out, None)  # says why the fused variants get no drafts
    summary = write_summary(out, rows, Path(adapter))
    steps.finish()
    return summary


def _add_drafts(out: Path, data: Path | None, options: DraftOptions | None = None) -> None:
    fused = fused_variants(out)
    if fused and data is None:
        log.info("no training data named: the fused variants get no draft table (optimize draft)")
    elif fused:
        table = add_drafts(fused, data, options)
        log.info(
            "draft table of %d contexts from %s in %d fused variants",
            len(table.table),
            data,
            len(fused),
        )


def _training_file(adapter: Path) -> Path | None:
    """The training data file recorded by `tuneloop train`, if it is still there."""
    return _recorded_file(adapter, ("data",))


def _recorded_file(adapter: Path, keys: tuple[str, ...]) -> Path | None:
    """The first of `keys` in the adapter's training_config.json naming an existing file."""
    config = adapter / "training_config.json"
    if config.is_file():
        values = json.loads(config.read_text(encoding="utf-8"))
        for key in keys:
            if isinstance(values.get(key), str) and Path(values[key]).is_file():
                return Path(values[key])
    return None


def _fused_available() -> bool:
    if importlib.util.find_spec("onnxruntime_genai") is None:
        log.warning(
            "onnxruntime-genai is not installed: skipping the fused variants "
            "(pip install 'tuneloop[fused]')"
        )
        return False
    return True


def _validation_file(adapter: Path) -> Path:
    """The validation file recorded by `tuneloop train`, when the adapter says which it was."""
    if path := _recorded_file(adapter, ("val", "val_data", "validation")):
        return path
    raise UsageError(
        f"give the validation file with --data FILE ({adapter} does not name one in "
        "training_config.json)"
    )


def summary_row(folder: Path, result: dict) -> dict:
    manifest = read_artifact(folder)
    speed, task, quality = result.get("speed") or {}, result.get("task"), result["quality"]
    decode = (speed.get("candidate") or {}).get("decode_tokens_per_s", {})
    return {
        "variant": folder.name,
        "backend": manifest.get("backend"),
        "size_mb": result["size_mb"]["candidate"],
        "decode_b1": decode.get("1"),
        "decode_b8": decode.get("8"),
        "speedup_b1": (speed.get("decode_speedup") or {}).get("1"),
        "ppl_change": quality["perplexity_change"],
        "top1": quality["top1_agreement"],
        "mean_kl": quality["mean_kl"],
        "accuracy": task["candidate"]["accuracy"] if task else None,
        "valid_json": task["candidate"]["valid_json"] if task else None,
        "peak_rss_mb": (speed.get("candidate") or {}).get("peak_rss_mb"),
        "gate": result["gate"]["status"],
        "failures": result["gate"]["failures"],
    }


def reference_row(merged: Path, cache: ReferenceCache, rows: list[dict]) -> dict:
    decode = (cache.speed or {}).get("decode_tokens_per_s", {})
    first = json.loads((merged.parent / rows[0]["variant"] / "verify.json").read_text())
    task = first.get("task")
    return {
        "variant": merged.name,
        "backend": "torch",
        "size_mb": weights_mb(merged),
        "decode_b1": decode.get("1"),
        "decode_b8": decode.get("8"),
        "speedup_b1": 1.0 if decode else None,
        "ppl_change": 0.0,
        "top1": 1.0,
        "mean_kl": 0.0,
        "accuracy": task["reference"]["accuracy"] if task else None,
        "valid_json": task["reference"]["valid_json"] if task else None,
        "peak_rss_mb": (cache.speed or {}).get("peak_rss_mb"),
        "gate": "reference",
        "failures": [],
    }


def recommended_variant(rows: list[dict]) -> str | None:
    """The fastest variant (decode, batch 1) that passed the gate."""
    passed = [r for r in rows if r["gate"] == "passed"]
    if not passed:
        return None
    return max(passed, key=lambda r: r["decode_b1"] or 0.0)["variant"]


def write_summary(out: Path, rows: list[dict], adapter: Path) -> dict:
    from tuneloop.optimize.report import summary_chart, summary_markdown

    recommended = recommended_variant(rows)
    if (adapter / REFERENCE_PROFILE).is_file():
        shutil.copy2(adapter / REFERENCE_PROFILE, out / REFERENCE_PROFILE)
    summary = {"format": 1, "adapter": str(adapter), "recommended": recommended, "rows": rows}
    save_json(out / "summary.json", summary)
    command = f"tuneloop optimize all --adapter {adapter} --out {out}"
    (out / "summary.md").write_text(summary_markdown(rows, recommended, command), "utf-8")
    summary_chart(rows, out / "summary.png")
    if recommended is None:
        log.warning("no variant passed the gate; see %s", out / "summary.md")
    return summary
