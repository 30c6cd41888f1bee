"""Command-line entry points of the data and training stage."""

from __future__ import annotations

import logging
from pathlib import Path

from tuneloop.base_model import DEFAULT_BASE
from tuneloop.errors import DataError, UsageError
from tuneloop.train.options import Method, PrepareOptions, TrainOptions

log = logging.getLogger(__name__)


def data_check(
    file: Path,
    *,
    base: str = DEFAULT_BASE,
    max_tokens: int | None = None,
    epochs: float | None = None,
    label_field: str | None = None,
    json: bool = False,
) -> int:
    """Validate a training file and print its problems and statistics.

    Every problem is reported with file, line number and field, and counted by kind; the
    statistics give tokens per example, assistant tokens and the estimated training tokens.
    Exits 1 when there are errors (or fewer than 10 usable examples), so it can gate a CI job.

    Args:
        file: JSONL or CSV file of chat, prompt/completion or alpaca examples.
        base: base model whose tokenizer and context length the limits use.
        max_tokens: token limit per example (default: the base model's context length).
        epochs: epochs for the training-token estimate (default: the `auto` rule).
        label_field: also check that each assistant answer is JSON with this label field.
        json: print the report as JSON instead of text.
    """
    from tuneloop.base_model import load_tokenizer, resolve_base
    from tuneloop.train.checks import check_file, format_report, report_json
    from tuneloop.train.manifest import context_length

    resolved = resolve_base(base)
    report, _ = check_file(
        file,
        load_tokenizer(resolved),
        max_tokens=max_tokens or context_length(resolved),
        epochs=epochs,
        label_field=label_field,
    )
    print(report_json(report) if json else format_report(report))
    return 0 if report.ok else 1


def data_prepare(
    file: Path,
    *,
    out: Path,
    base: str = DEFAULT_BASE,
    options: PrepareOptions = PrepareOptions(),  # noqa: B008 - frozen defaults, built once
    rejects: Path | None = None,
) -> int:
    """Clean, deduplicate and split a data file into train/validation/test with a report.

    Writes train.jsonl, val.jsonl, test.jsonl, data_report.md/.json, lengths.png and
    rejects.jsonl (every removed example with its line and reason) into OUT.

    Args:
        file: JSONL or CSV file of examples.
        out: folder for train.jsonl, val.jsonl, test.jsonl and the data report.
        base: base model whose tokenizer measures lengths.
        options: cleaning and splitting options.
        rejects: where to write the removed examples (default: OUT/rejects.jsonl).
    """
    from tuneloop.base_model import load_tokenizer, resolve_base
    from tuneloop.train.manifest import context_length
    from tuneloop.train.prepare import prepare

    resolved = resolve_base(base)
    report = prepare(
        Path(file),
        Path(out),
        load_tokenizer(resolved),
        options,
        base=resolved.spec,
        context=context_length(resolved),
        rejects_path=rejects,
    )
    splits = ", ".join(f"{n} {s['examples']}" for n, s in report["splits"].items())
    removed = ", ".join(f"{k} {v}" for k, v in report["removed"].items()) or "nothing"
    print(f"{out}: {splits} (removed: {removed}); report: {Path(out) / 'data_report.md'}")
    return 0


def train(
    *,
    data: Path | None = None,
    out: Path | None = None,
    base: str = DEFAULT_BASE,
    method: Method = "lora",
    val: Path | None = None,
    name: str | None = None,
    resume: Path | None = None,
    options: TrainOptions = TrainOptions(),  # noqa: B008 - frozen defaults, built once
) -> int:
    """Train an adapter (LoRA by default) on a data file.

    Writes into OUT the adapter (loadable by plain PEFT), tuneloop_adapter.json, the drift
    reference profile, training_config.json (with the reason for every `auto` choice),
    metrics.jsonl, TensorBoard events, report.md with the loss curve, and a model card.
    Checkpoints are kept under OUT/checkpoints until training ends; after a crash or a kill,
    `tuneloop train --resume OUT` continues from the last complete one. Runs unchanged under
    `torchrun` or `accelerate launch` on several processes (DDP).

    Args:
        data: training file (JSONL or CSV), e.g. train.jsonl from `tuneloop data prepare`.
        out: folder for the adapter, metrics, report and drift reference profile.
        base: base model: an alias, a local folder or a Hugging Face model id.
        method: adaptation method.
        val: validation file; without it a share of the data is held out.
        name: adapter name (default: the name of OUT).
        resume: continue the run whose output folder this is (other inputs are read from it).
        options: training options.
    """
    from tuneloop.train.run import Job, run

    if resume is not None:
        job = Job.from_folder(resume)
    elif data is None or out is None:
        raise UsageError("give --data FILE and --out DIR (or --resume DIR)")
    else:
        for path in (data, val):
            if path is not None and not Path(path).is_file():
                raise DataError(f"{path}: no such file")
        job = Job(Path(data), Path(out), base, method, val, options, name or Path(out).name)
    run(job, resume=resume is not None)
    return 0


def evaluate(
    *,
    adapter: Path,
    data: Path,
    base: str | None = None,
    label_field: str | None = None,
    group_field: str | None = None,
    out: Path | None = None,
    batch_size: int = 16,
    limit: int | None = None,
) -> int:
    """Compare the base model and an adapter on a test file (loss, perplexity, task accuracy).

    Both models answer every test prompt (greedy); when answers are JSON with a label, the
    report adds accuracy, macro-F1, the confusion matrix, the share of valid JSON and of JSON
    in the expected shape, and with --group-field the accuracy per group and its largest gap.
    Writes eval.md and eval.json.

    Args:
        adapter: folder written by `tuneloop train`.
        data: test file (JSONL or CSV), e.g. test.jsonl from `tuneloop data prepare`.
        base: base model the adapter was trained on (default: the one in its manifest).
        label_field: field of the JSON answers holding the label (default: from the manifest).
        group_field: metadata field (or answer field) to slice accuracy by.
        out: folder for eval.md and eval.json (default: ADAPTER/eval).
        batch_size: prompts generated together.
        limit: evaluate only the first N examples.
    """
    from tuneloop.base_model import resolve_base
    from tuneloop.train.eval_report import write_eval_report
    from tuneloop.train.evaluate import evaluate_adapter
    from tuneloop.train.manifest import check_base_matches, read_manifest

    adapter = Path(adapter)
    if not adapter.is_dir():
        raise UsageError(f"--adapter {adapter}: no such folder")
    manifest = read_manifest(adapter)
    resolved = resolve_base(base or (manifest["base"]["spec"] if manifest else DEFAULT_BASE))
    if manifest:
        check_base_matches(manifest, resolved, adapter)
    report = evaluate_adapter(
        adapter,
        Path(data),
        resolved,
        manifest=manifest,
        label_field=label_field,
        group_field=group_field,
        batch_size=batch_size,
        limit=limit,
    )
    target = Path(out) if out else adapter / "eval"
    write_eval_report(target, report)
    print((target / "eval.md").read_text())
    return 0
