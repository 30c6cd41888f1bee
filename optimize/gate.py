"""The quality gate: thresholds per precision, and the verdict on a candidate's figures.

Defaults (all configurable): top-1 agreement with the fp32 reference at least 0.97 for 8-bit
variants and 0.90 for 4-bit ones; perplexity at most 2% (8-bit) or 8% (4-bit) above the
reference's; task accuracy at most 2 points below the reference's when the data has labels.
An fp32 export must match almost exactly (0.99 and 0.5%).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

# precision family -> (min top-1 agreement, max perplexity change)
DEFAULTS = {"fp32": (0.99, 0.005), "8bit": (0.97, 0.02), "4bit": (0.90, 0.08)}
MAX_ACCURACY_DROP = 0.02


def precision_family(precision: str) -> str:
    """fp32, 8bit or 4bit, from a method or precision name such as int8, bnb-nf4, fp32."""
    if "4" in precision:
        return "4bit"
    if "8" in precision:
        return "8bit"
    return "fp32"


@dataclass
class GateThresholds:
    """Limits a candidate must meet against its fp32 reference."""

    min_top1: float | Literal["auto"] = "auto"
    """Minimum top-1 next-token agreement with the reference (auto: 0.97 for 8-bit, 0.90 for
    4-bit, 0.99 for fp32)."""
    max_ppl_increase: float | Literal["auto"] = "auto"
    """Maximum relative perplexity increase, 0.02 = 2 percent (auto: 0.02 for 8-bit, 0.08 for
    4-bit, 0.005 for fp32)."""
    max_kl: float | None = None
    """Maximum mean KL divergence from the reference (off unless given)."""
    max_accuracy_drop: float = MAX_ACCURACY_DROP
    """Maximum drop in task accuracy (0.02 = 2 points), when the data has labels."""

    def __post_init__(self) -> None:
        for name in ("min_top1", "max_ppl_increase", "max_kl", "max_accuracy_drop"):
            value = getattr(self, name)
            if isinstance(value, (int, float)) and value < 0:
                raise ValueError(f"--{name.replace('_', '-')} must not be negative, got {value}")
        if isinstance(self.min_top1, (int, float)) and self.min_top1 > 1:
            raise ValueError(f"--min-top1 is a share between 0 and 1, got {self.min_top1}")

    def resolved(self, precision: str) -> dict:
        """The thresholds with `auto` replaced by the default for `precision`."""
        top1, ppl = DEFAULTS[precision_family(precision)]
        values = asdict(self)
        values["min_top1"] = top1 if self.min_top1 == "auto" else float(self.min_top1)
        values["max_ppl_increase"] = (
            ppl if self.max_ppl_increase == "auto" else float(self.max_ppl_increase)
        )
        return values


def judge(thresholds: dict, quality, accuracy: dict | None) -> list[str]:
    """Every threshold the candidate misses, each saying by how much; empty when it passes."""
    failures = []
    if quality.top1_agreement < thresholds["min_top1"]:
        failures.append(
            f"top-1 agreement {quality.top1_agreement:.4f} < {thresholds['min_top1']:.2f} "
            f"(short by {thresholds['min_top1'] - quality.top1_agreement:.4f})"
        )
    if quality.perplexity_change > thresholds["max_ppl_increase"]:
        failures.append(
            f"perplexity change {quality.perplexity_change:+.2%} > "
            f"+{thresholds['max_ppl_increase']:.1%} "
            f"(over by {quality.perplexity_change - thresholds['max_ppl_increase']:.2%})"
        )
    if thresholds["max_kl"] is not None and quality.mean_kl > thresholds["max_kl"]:
        failures.append(f"mean KL {quality.mean_kl:.4f} > {thresholds['max_kl']}")
    if accuracy:
        drop = accuracy["reference"] - accuracy["candidate"]
        if drop > thresholds["max_accuracy_drop"]:
            failures.append(
                f"task accuracy {accuracy['candidate']:.3f} vs reference "
                f"{accuracy['reference']:.3f} (drop {drop:.3f} > {thresholds['max_accuracy_drop']})"
            )
    return failures
