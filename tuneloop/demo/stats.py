"""The data card's statistics of a generated set (`python -m tuneloop.demo.generate --stats`)."""

from __future__ import annotations

from tuneloop.demo.generate import CATEGORIES, TONES, Ticket


def summarize(tickets: list[Ticket]) -> str:
    n = len(tickets)
    words = sorted(len(t.text.split()) for t in tickets)
    chars = sorted(len(t.text) for t in tickets)
    reply_words = sorted(len(t.reply.split()) for t in tickets)
    lines = [f"examples: {n}"]
    lines += [f"  {c}: {sum(t.category == c for t in tickets)}" for c in CATEGORIES]
    lines.append("ticket words " + percentiles(words))
    lines.append("ticket chars " + percentiles(chars))
    lines.append("reply words  " + percentiles(reply_words))
    lines.append(f"tickets over 80 words: {sum(w > 80 for w in words) / n:.1%}")
    shares = {"any noise": sum(bool(t.noise) for t in tickets)}
    for kind in ("typos", "drop_apostrophes", "lowercase", "drop_punctuation", "text_speak"):
        shares[f"  {kind}"] = sum(kind in t.noise for t in tickets)
    shares["secondary topic"] = sum(t.aside for t in tickets)
    shares["non-native phrasing"] = sum(t.non_native for t in tickets)
    lines += [f"{label}: {count} ({count / n:.0%})" for label, count in shares.items()]
    lines += [f"tone {tone}: {sum(t.tone == tone for t in tickets) / n:.0%}" for tone in TONES]
    return "\n".join(lines)


def percentiles(values: list[int]) -> str:
    marks = {"min": 0.0, "p10": 0.1, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p90": 0.9, "max": 1.0}
    picks = {k: values[min(len(values) - 1, int(q * len(values)))] for k, q in marks.items()}
    return " ".join(f"{k}={v}" for k, v in picks.items())
