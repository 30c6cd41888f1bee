"""`tuneloop optimize verify`: measure a candidate against its fp32 reference and judge it.

1) sample the validation examples  2) teacher-forced quality (perplexity, KL, top-1)
3) task accuracy when the answers carry a label  4) size, load time, speed and peak memory,
each model in its own process  5) the gate's verdict, written to the candidate's manifest
(what `serve` reads) and to verify.json / verify.md / verify.png beside it.
A failed gate still writes everything: the report says by how much each threshold was missed.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from tuneloop.data_formats import prompt_and_completion, read_examples
from tuneloop.errors import DataError
from tuneloop.optimize.artifacts import read_artifact, save_json, set_gate
from tuneloop.optimize.gate import GateThresholds, judge

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".onnx", ".data", ".onnx_data", ".safetensors")


@dataclass
class VerifyOptions:
    """How much to measure."""

    samples: int | Literal["all"] = 64
    """Examples scored per variant, in every part that scores them: the first N of --data
    (teacher-forced) and the first N of --task-data (answered for task accuracy); fixed, so
    runs compare. Or all."""
    label_field: str | None = None
    """JSON field of the answers holding the class label (default: from the adapter's manifest,
    else detected)."""
    task_data: Path | None = None
    """File for task accuracy (e.g. the test split; default: the sampled --data examples)."""
    new_tokens: int = 64
    """Tokens generated per sequence when measuring decode speed."""
    threads: int = 0
    """CPU threads for every model (0: one per core)."""
    speed: bool = True
    """Measure load time, speed and memory (skip with --no-speed for a quality-only check)."""

    def __post_init__(self) -> None:
        if self.samples != "all" and int(self.samples) < 1:
            raise ValueError(f"--samples must be at least 1 (or 'all'), got {self.samples}")
        if self.new_tokens < 1:
            raise ValueError(f"--new-tokens must be at least 1, got {self.new_tokens}")


@dataclass
class ReferenceCache:
    """Reference figures computed once when several candidates share a reference."""

    speed: dict | None = None
    answers: dict[str, list[str]] = field(default_factory=dict)


def verify_candidate(
    reference: Path,
    candidate: Path,
    data: Path,
    thresholds: GateThresholds | None = None,
    options: VerifyOptions | None = None,
    cache: ReferenceCache | None = None,
) -> dict:
    """Compare, judge, write the reports; return the result (its `gate.status` says pass/fail)."""
    from tuneloop.optimize.report import write_verify_report

    thresholds, options = thresholds or GateThresholds(), options or VerifyOptions()
    cache = cache or ReferenceCache()
    manifest = read_artifact(candidate)
    precision = manifest.get("precision") or "fp32"
    examples = sample_examples(data, options.samples)
    result = {
        "reference": str(reference),
        "candidate": str(candidate),
        "variant": manifest.get("variant") or Path(candidate).name,
        "precision": precision,
        "data": str(data),
        "samples": len(examples),
    }
    result.update(_model_comparison(reference, candidate, examples, manifest, options, cache))
    result["size_mb"] = {"reference": weights_mb(reference), "candidate": weights_mb(candidate)}
    if options.speed:
        result["speed"] = _speeds(reference, candidate, examples, options, cache)
    resolved = thresholds.resolved(precision)
    failures = judge(resolved, _Quality(result["quality"]), _accuracies(result.get("task")))
    status = "failed" if failures else "passed"
    result["gate"] = {"status": status, "thresholds": resolved, "failures": failures}
    save_json(Path(candidate) / "verify.json", result)
    write_verify_report(Path(candidate), result)
    set_gate(candidate, status, resolved, failures)
    return result


def sample_examples(data: Path, samples: int | str) -> list[dict]:
    examples = read_examples(Path(data))
    return examples if samples == "all" else examples[: int(samples)]


def _model_comparison(reference, candidate, examples, manifest, options, cache) -> dict:
    from tuneloop.optimize.quality import compare, tokenize_for_scoring
    from tuneloop.optimize.runtime import load_causal_lm

    ref_model = load_causal_lm(reference, options.threads or None)
    cand_model = load_causal_lm(candidate, options.threads or None)
    tokenizer = ref_model.tokenizer
    scored = [tokenize_for_scoring(tokenizer, ex, tokenizer.eos_token_id) for ex in examples]
    desc = f"teacher-forced: {Path(candidate).name} vs {Path(reference).name}"
    comparison = {"quality": asdict(compare(ref_model, cand_model, scored, desc))}
    comparison["task"] = _task(ref_model, cand_model, examples, manifest, options, cache)
    del ref_model, cand_model
    gc.collect()
    return comparison


def _task(ref_model, cand_model, examples, manifest, options, cache) -> dict | None:
    from tuneloop.optimize.answers import generate_answers
    from tuneloop.train.data import detect_label_field
    from tuneloop.train.labels import answer_keys, label_of
    from tuneloop.train.metrics import label_metrics

    task_examples = (
        sample_examples(options.task_data, options.samples) if options.task_data else examples
    )
    field_name = (
        options.label_field
        or (manifest.get("task") or {}).get("label_field")
        or detect_label_field(task_examples)
    )
    if not field_name:
        return None
    references = [label_of(ex, field_name) for ex in task_examples]
    if None in references:
        line = references.index(None) + 1
        raise DataError(f"label field {field_name!r} is missing from task example {line}")
    labels, keys = sorted(set(references)), answer_keys(task_examples[0])

    def score(answers: list[str]) -> dict:
        return label_metrics(
            answers, references, label_field=field_name, labels=labels, expected_keys=keys
        )

    key = f"{options.task_data}:{len(task_examples)}:{field_name}"
    if key not in cache.answers:
        desc = "task accuracy: reference answers"
        cache.answers[key] = generate_answers(ref_model, task_examples, desc=desc)
    candidate_answers = generate_answers(
        cand_model, task_examples, desc="task accuracy: candidate answers"
    )
    return {
        "label_field": field_name,
        "data": str(options.task_data) if options.task_data else "the sampled --data examples",
        "examples": len(task_examples),
        "reference": score(cache.answers[key]),
        "candidate": score(candidate_answers),
    }


def _speeds(reference, candidate, examples, options, cache) -> dict:
    from tuneloop.optimize.profiling import profile_in_subprocess
    from tuneloop.optimize.runtime import folder_tokenizer

    tokenizer = folder_tokenizer(reference)
    prompts = [
        tokenizer.apply_chat_template(prompt_and_completion(ex)[0], add_generation_prompt=True)
        for ex in examples[:8]
    ]
    args = (prompts, options.new_tokens, options.threads)
    if cache.speed is None:
        log.info("profiling the reference %s", reference)
        cache.speed = asdict(profile_in_subprocess(Path(reference), *args))
    log.info("profiling %s", candidate)
    speed = {"reference": cache.speed, "candidate": asdict(profile_in_subprocess(candidate, *args))}
    ref_decode = speed["reference"]["decode_tokens_per_s"]
    cand_decode = speed["candidate"]["decode_tokens_per_s"]
    speed["decode_speedup"] = {b: cand_decode[b] / ref_decode[b] for b in ref_decode}
    return speed


def weights_mb(folder: Path) -> float:
    files = [p for p in Path(folder).iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def _accuracies(task: dict | None) -> dict | None:
    if not task:
        return None
    return {"reference": task["reference"]["accuracy"], "candidate": task["candidate"]["accuracy"]}


class _Quality:
    """Attribute access to the quality dict for `gate.judge`."""

    def __init__(self, values: dict) -> None:
        self.__dict__.update(values)
