"""What `tuneloop train` writes for people: report.md with the loss curve, and the model card."""

from __future__ import annotations

import json
from pathlib import Path

REPORT, LOSS_PNG, MODEL_CARD = "report.md", "loss.png", "README.md"


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_loss(metrics: list[dict], path: Path, best_step: int | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(m["step"], m["loss"]) for m in metrics if "loss" in m]
    val = [(m["step"], m["eval_loss"]) for m in metrics if "eval_loss" in m]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    if train:
        ax.plot(*zip(*train, strict=True), label="training loss", linewidth=1.2)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation loss", linewidth=1.6)
    if best_step is not None:
        ax.axvline(best_step, color="grey", linestyle=":", label=f"kept (step {best_step})")
    ax.set(xlabel="optimizer step", ylabel="loss (nats / answer token)", title="Loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out: Path, config: dict, summary: dict) -> None:
    metrics = read_metrics(out / "metrics.jsonl")
    plot_loss(metrics, out / LOSS_PNG, summary.get("best_step"))
    resolved = config["resolved"]
    lines = [
        f"# Training report: {config['name']}",
        "",
        f"`{config['method']}` adapter on `{config['base']}`, trained on `{config['data']}` "
        f"({summary['train_examples']:,} examples; validation: {config['val_source']}).",
        "",
        f"![loss]({LOSS_PNG})",
        "",
        "| | |",
        "|---|---|",
        f"| steps | {summary['steps']} of {resolved['max_steps']} ({summary['stop_reason']}) |",
        f"| kept checkpoint | step {summary.get('best_step')} "
        f"(validation loss {_fmt(summary.get('best_val_loss'))}) |",
        f"| first / last validation loss | {_fmt(summary.get('first_val_loss'))} / "
        f"{_fmt(summary.get('last_val_loss'))} |",
        f"| training time | {summary['train_seconds']:.0f} s "
        f"({summary['tokens_per_second']:.0f} tokens/s, {summary['tokens_seen']:,} tokens) |",
        f"| trainable parameters | {summary['trainable_params']:,} of "
        f"{summary['total_params']:,} |",
        "",
        "## Choices",
        "",
        "| option | value | why |",
        "|---|---|---|",
    ]
    for name, choice in resolved["choices"].items():
        lines.append(f"| {name} | {choice['value']} | {choice['reason']} |")
    if config.get("dropped"):
        lines += ["", "Left out of training: " + _counts(config["dropped"])]
    lines += [
        "",
        "Every option is in `training_config.json`; every logged step in `metrics.jsonl`.",
    ]
    (out / REPORT).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_model_card(out: Path, config: dict, summary: dict, task: dict) -> None:
    base = config["base_fingerprint"]
    labels = ", ".join(f"`{label}`" for label in task.get("labels", []))
    lines = [
        "---",
        f"base_model: {base['spec']}",
        "library_name: peft" if config["method"] != "full" else "library_name: transformers",
        "tags: [tuneloop, " + config["method"] + "]",
        "---",
        "",
        f"# {config['name']}",
        "",
        f"A `{config['method']}` fine-tune of `{base['spec']}` ({base['architecture']}) made "
        f"with tuneloop {config['tuneloop_version']}.",
        "",
        "## Training data",
        "",
        f"`{config['data']}`: {summary['train_examples']:,} training examples, "
        f"validation {config['val_source']}. Loss on "
        + ("all tokens." if config["options"]["train_on_prompt"] else "the assistant's answers.")
        + (
            f" Answers are JSON with the label `{task['label_field']}` ({labels})."
            if task.get("label_field")
            else ""
        ),
        "",
        "## Results",
        "",
        f"Best validation loss {_fmt(summary.get('best_val_loss'))} at step "
        f"{summary.get('best_step')}; see `report.md`. Run `tuneloop eval --adapter {out.name} "
        "--data TEST.jsonl` for task metrics against the base model.",
        "",
        "## Use",
        "",
        "```python",
        "from peft import PeftModel",
        "from tuneloop.base_model import load_model  # resolves aliases, folders and hub ids",
        f"base = load_model({base['spec']!r})",
        f"model = PeftModel.from_pretrained(base, {str(out)!r})",
        "```",
        "",
        f"or serve it: `tuneloop serve --adapter {config['name']}={out}`.",
        "",
        "## Limits",
        "",
        "Trained on the data above only; check it on your own test split before relying on it. "
        "`reference_profile.json` describes the training prompts so that a server can tell "
        "when live traffic drifts away from them.",
    ]
    (out / MODEL_CARD).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _counts(counts: dict) -> str:
    return ", ".join(f"{n} ({reason})" for reason, n in counts.items())
