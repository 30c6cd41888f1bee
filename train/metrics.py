"""Task metrics of generated JSON answers: accuracy, macro-F1, confusion, validity, group gaps."""

from __future__ import annotations

from collections import Counter, defaultdict

from tuneloop.train.labels import parse_answer

INVALID, OTHER = "(invalid)", "(other)"


def label_metrics(
    answers: list[str],
    references: list[str],
    *,
    label_field: str,
    labels: list[str],
    expected_keys: tuple[str, ...],
    groups: list[str | None] | None = None,
) -> dict:
    """Scores of generated answers against reference labels."""
    parsed = [parse_answer(a, label_field) for a in answers]
    predicted = [
        (p.label if p.label in labels else OTHER) if p.label is not None else INVALID
        for p in parsed
    ]
    n = max(len(references), 1)
    result = {
        "examples": len(references),
        "accuracy": sum(p == r for p, r in zip(predicted, references, strict=True)) / n,
        "macro_f1": macro_f1(predicted, references, labels),
        "valid_json": sum(p.is_json for p in parsed) / n,
        "valid_shape": sum(p.has_shape(expected_keys) for p in parsed) / n,
        "confusion": confusion(predicted, references, labels),
    }
    if groups is not None:
        result["groups"] = group_accuracy(predicted, references, groups)
    return result


def macro_f1(predicted: list[str], references: list[str], labels: list[str]) -> float:
    scores = []
    for label in labels:
        tp = sum(p == label and r == label for p, r in zip(predicted, references, strict=True))
        fp = sum(p == label and r != label for p, r in zip(predicted, references, strict=True))
        fn = sum(p != label and r == label for p, r in zip(predicted, references, strict=True))
        if tp + fp + fn == 0:
            continue  # a label absent from both sides says nothing
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else 0.0


def confusion(predicted: list[str], references: list[str], labels: list[str]) -> dict:
    """{reference label: {predicted label or (other)/(invalid): count}}."""
    table = {label: dict.fromkeys([*labels, OTHER, INVALID], 0) for label in labels}
    for p, r in zip(predicted, references, strict=True):
        table.setdefault(r, dict.fromkeys([*labels, OTHER, INVALID], 0))[p] += 1
    return table


def group_accuracy(predicted: list[str], references: list[str], groups: list) -> dict:
    """Accuracy per group and the largest gap between two groups (a fairness slice)."""
    hits: dict = defaultdict(list)
    for p, r, g in zip(predicted, references, groups, strict=True):
        hits["(none)" if g is None else str(g)].append(p == r)
    per_group = {g: {"examples": len(h), "accuracy": sum(h) / len(h)} for g, h in hits.items()}
    accuracies = [v["accuracy"] for v in per_group.values()]
    return {
        "per_group": dict(sorted(per_group.items())),
        "largest_gap": (max(accuracies) - min(accuracies)) if len(accuracies) > 1 else 0.0,
        "sizes": dict(Counter(str(g) for g in groups)),
    }
