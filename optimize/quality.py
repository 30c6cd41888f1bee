"""Teacher-forced comparison of a candidate with its reference, in the manner of llama.cpp's
`llama-perplexity --kl-divergence`: both models read the same prompt + reference answer, and at
every answer position we compare their next-token distributions.

Reported: perplexity of the reference answers under each model and its relative change, mean /
p99 / max KL divergence KL(reference || candidate), and top-1 agreement (how often both models
would pick the same next token).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuneloop.data_formats import prompt_and_completion


@dataclass(frozen=True)
class Scored:
    """One example tokenized for teacher forcing: the answer occupies `ids[start:]`."""

    ids: list[int]
    start: int


@dataclass(frozen=True)
class QualityReport:
    examples: int
    positions: int
    reference_perplexity: float
    candidate_perplexity: float
    perplexity_change: float
    """candidate / reference - 1 (0.02 means 2% higher perplexity)."""
    mean_kl: float
    p99_kl: float
    max_kl: float
    top1_agreement: float


def tokenize_for_scoring(tokenizer, example: dict, eos_id: int) -> Scored:
    """Prompt through the chat template, then the reference answer and the end token."""
    prompt, completion = prompt_and_completion(example)
    prefix = tokenizer.apply_chat_template(prompt, add_generation_prompt=True)
    answer = tokenizer(completion, add_special_tokens=False)["input_ids"] + [eos_id]
    return Scored(list(prefix) + answer, len(prefix))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def compare(reference, candidate, scored: list[Scored], desc: str = "scoring") -> QualityReport:
    """Score every example with both models (objects with `sequence_logits(ids)`)."""
    from tuneloop.progress import bar

    nll_ref, nll_cand, kls, agree = [], [], [], []
    for item in bar(scored, desc=desc, unit="example"):
        targets = np.asarray(item.ids[item.start :])
        window = slice(item.start - 1, len(item.ids) - 1)  # logits at t predict token t + 1
        ref = log_softmax(reference.sequence_logits(item.ids)[window])
        cand = log_softmax(candidate.sequence_logits(item.ids)[window])
        rows = np.arange(len(targets))
        nll_ref.append(-ref[rows, targets])
        nll_cand.append(-cand[rows, targets])
        kls.append((np.exp(ref) * (ref - cand)).sum(-1))
        agree.append(ref.argmax(-1) == cand.argmax(-1))
    return summarize(nll_ref, nll_cand, kls, agree)


def summarize(nll_ref, nll_cand, kls, agree) -> QualityReport:
    nll_ref, nll_cand = np.concatenate(nll_ref), np.concatenate(nll_cand)
    kl, same = np.clip(np.concatenate(kls), 0.0, None), np.concatenate(agree)
    ppl_ref, ppl_cand = float(np.exp(nll_ref.mean())), float(np.exp(nll_cand.mean()))
    return QualityReport(
        examples=len(kls),
        positions=int(kl.size),
        reference_perplexity=ppl_ref,
        candidate_perplexity=ppl_cand,
        perplexity_change=ppl_cand / ppl_ref - 1.0,
        mean_kl=float(kl.mean()),
        p99_kl=float(np.percentile(kl, 99)),
        max_kl=float(kl.max()),
        top1_agreement=float(same.mean()),
    )
