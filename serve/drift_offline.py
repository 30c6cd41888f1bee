"""`tuneloop monitor drift`: score a file of prompts against a reference profile, offline.

For checking a new data source before it reaches production (or gating it in CI): the same
features and distances the server exports, computed on a file in any format
`tuneloop.data_formats` reads. Records may end without an assistant answer (prompt-only);
with an answer, its length counts too.

- Without a model (fast: a tokenizer only): `prompt_tokens`, `rare_token_share`, and
  `completion_tokens` where the file has answers.
- With `with_model` (slower: one forward pass per record on the base model plus the adapter):
  also `completion_logprob` of the file's answers (teacher-forced, exactly as the reference
  was measured in training) and the prompt-embedding features (`embedding_distance` and the
  centroid cosine distance).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tuneloop.data_formats import DataProblem, RecordError, detect_format, iter_raw, to_chat
from tuneloop.drift_profile import PSI_MODERATE, PSI_SIGNIFICANT, ReferenceProfile, drift_scores
from tuneloop.errors import DataError


@dataclass
class Example:
    line: int
    messages: list[dict]
    """The conversation; ends with the assistant answer when `has_answer`."""
    has_answer: bool


@dataclass
class DriftReport:
    reference: str
    data: str
    requests: int
    threshold: float
    scores: dict[str, dict[str, float]]
    features_skipped: dict[str, str] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return any(m.get("psi", 0) > self.threshold for m in self.scores.values())

    def to_json(self) -> dict:
        return {
            "reference": self.reference,
            "data": self.data,
            "requests": self.requests,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "scores": self.scores,
            "verdicts": {f: verdict(m["psi"]) for f, m in self.scores.items() if "psi" in m},
            "features_skipped": self.features_skipped,
        }


def verdict(psi: float) -> str:
    """The usual reading of PSI (tuneloop.drift_profile)."""
    if psi > PSI_SIGNIFICANT:
        return "significant"
    return "moderate" if psi > PSI_MODERATE else "stable"


def read_prompts(path: Path) -> list[Example]:
    """Every record as messages, with or without a final answer; the first unreadable record
    raises a DataError naming its line."""
    examples: list[Example] = []
    for line, raw in iter_raw(path):
        if isinstance(raw, DataProblem):
            raise DataError(raw.where(path))
        examples.append(_example(path, line, raw))
    if not examples:
        raise DataError(f"{path}: no records")
    return examples


def _example(path: Path, line: int, raw: dict) -> Example:
    fmt = detect_format(raw)
    if fmt is not None:
        try:
            return Example(line, to_chat(raw, fmt)["messages"], has_answer=True)
        except RecordError as exc:
            if exc.kind not in ("no_assistant", "role_order"):
                raise DataError(f"{path}:{line}: field {exc.field}: {exc.message}") from exc
    messages = raw.get("messages")
    if isinstance(messages, list) and messages and all(_is_message(m) for m in messages):
        plain = [{"role": m["role"], "content": m["content"]} for m in messages]
        if plain[-1]["role"] == "assistant":
            return Example(line, plain, has_answer=True)
        return Example(line, plain, has_answer=False)
    for key in ("prompt", "instruction"):
        if isinstance(raw.get(key), str) and raw[key].strip():
            return Example(line, [{"role": "user", "content": raw[key]}], has_answer=False)
    raise DataError(
        f"{path}:{line}: no prompt found: need 'messages', 'prompt' or 'instruction' "
        f"(keys: {', '.join(sorted(raw)) or 'none'})"
    )


def _is_message(message) -> bool:
    return (
        isinstance(message, dict)
        and message.get("role") in ("system", "user", "assistant")
        and isinstance(message.get("content"), str)
    )


def encode_examples(tokenizer, examples: list[Example]) -> list:
    """Token ids as training saw them: prompt with the generation prompt, then the answer with
    its end-of-turn token labelled (prompt-only records get no labels)."""
    from tuneloop.train.encoding import IGNORE_INDEX, Encoded, encode, prompt_ids

    encoded = []
    for example in examples:
        if example.has_answer:
            encoded.append(encode(tokenizer, example.messages))
        else:
            ids = prompt_ids(tokenizer, example.messages)
            encoded.append(Encoded(list(ids), [IGNORE_INDEX] * len(ids), len(ids)))
    return encoded


def score_file(
    profile: ReferenceProfile,
    encoded: list,
    has_answer: list[bool],
    *,
    model=None,
) -> tuple[list[dict[str, float]], list]:
    """Per-record features (and prompt embeddings, with a model) of encoded records."""
    from tuneloop.train.encoding import IGNORE_INDEX

    scorer = profile.scorer()
    window, embeddings = [], []
    for item, answered in zip(encoded, has_answer, strict=True):
        prompt = item.input_ids[: item.prompt_length]
        answer_tokens = sum(label != IGNORE_INDEX for label in item.labels[item.prompt_length :])
        logprob, embedding = None, None
        if model is not None:
            logprob, embedding = _model_features(model, item)
        window.append(
            scorer.features(
                prompt,
                completion_tokens=answer_tokens if answered else None,
                completion_logprobs=[logprob] if logprob is not None else None,
                embedding=embedding,
            )
        )
        if embedding is not None:
            embeddings.append(embedding)
    return window, embeddings


def _model_features(model, item) -> tuple[float | None, list[float]]:
    """Teacher-forced mean log-probability of the answer and the prompt's mean last hidden
    state: the training stage's own computation (tuneloop.train.profile)."""
    import torch

    from tuneloop.train.profile import _row_features

    with torch.inference_mode():
        (sample,) = _row_features(model, [item])
    return sample.completion_logprob, sample.embedding


def load_model(base: str, adapter: Path | None, profile: ReferenceProfile):
    """The base model (by default the one the profile records) with the adapter, for the
    model-based features."""
    from tuneloop.base_model import load_model as load_base
    from tuneloop.base_model import resolve_base

    resolved = resolve_base(base)
    model = load_base(resolved)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).eval().get_base_model()
    return model.eval()


def format_table(report: DriftReport) -> str:
    lines = [
        f"drift of {report.data} ({report.requests} records) against {report.reference}",
        f"{'feature':<20} {'method':<7} {'score':>8}  verdict",
    ]
    for feature, methods in sorted(report.scores.items()):
        for method, value in methods.items():
            reading = verdict(value) if method == "psi" else ""
            lines.append(f"{feature:<20} {method:<7} {value:>8.3f}  {reading}")
    for feature, why in report.features_skipped.items():
        lines.append(f"{feature:<20} {'-':<7} {'-':>8}  not scored: {why}")
    outcome = "DRIFT" if report.drifted else "ok"
    lines.append(
        f"{outcome}: PSI {'above' if report.drifted else 'at most'} {report.threshold:g} "
        f"(stable < {PSI_MODERATE:g} <= moderate <= {PSI_SIGNIFICANT:g} < significant)"
    )
    return "\n".join(lines)


def report_text(report: DriftReport, as_json: bool) -> str:
    return json.dumps(report.to_json(), indent=2) if as_json else format_table(report)


def check_drift(
    data: Path,
    reference: Path | None,
    *,
    adapter: Path | None,
    base: str | None,
    threshold: float,
) -> DriftReport:
    """Score `data` against the profile (by default ADAPTER/reference_profile.json); with
    `adapter` or `base`, load the model for the model-based features."""
    from tuneloop.base_model import DEFAULT_BASE, load_tokenizer, resolve_base
    from tuneloop.drift_profile import SCALAR_FEATURES
    from tuneloop.errors import UsageError

    if reference is None:
        if adapter is None:
            raise UsageError("give --reference PROFILE, or --adapter DIR that holds one")
        reference = Path(adapter) / "reference_profile.json"
    profile = ReferenceProfile.load(reference)
    examples = read_prompts(Path(data))
    spec = base or profile.base.get("spec") or DEFAULT_BASE
    tokenizer = load_tokenizer(resolve_base(spec))
    encoded = encode_examples(tokenizer, examples)
    with_model = adapter is not None or base is not None
    model = load_model(spec, adapter, profile) if with_model else None
    answers = [e.has_answer for e in examples]
    window, embeddings = score_file(profile, encoded, answers, model=model)
    scores = drift_scores(profile, window, embeddings)
    skipped = {}
    for name in [*SCALAR_FEATURES, "embedding"]:
        if name in scores or (name != "embedding" and name not in profile.features):
            continue
        needs_model = name in ("completion_logprob", "embedding_distance", "embedding")
        if needs_model and model is None:
            skipped[name] = "needs the model: pass --adapter DIR (or --base B)"
        elif name in ("completion_tokens", "completion_logprob"):
            skipped[name] = "the file has no answers"
    return DriftReport(str(reference), str(data), len(examples), threshold, scores, skipped)
