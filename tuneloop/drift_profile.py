"""Drift reference profile: what the training data looked like, in features cheap to compute live.

`tuneloop train` writes `reference_profile.json` next to the adapter, computed on the training
split. The server computes the same per-request features on served traffic, keeps a window of
them and compares the window with the profile; `tuneloop monitor drift` does the same offline.

Per-request features (all computed from things a server already has in hand):

- `prompt_tokens`: tokens of the rendered prompt (chat template applied, generation prompt
  added);
- `completion_tokens`: tokens of the completion (the reference in training, the generated one
  when served);
- `rare_token_share`: share of the prompt's non-special tokens whose id is *rare*, that is
  seen fewer than `min_count` times in the training prompts (so unknown tokens are rare too).
  For the reference histogram each training prompt is scored leave-one-out (its own tokens
  not counted), as a new prompt is: counted in-sample, a training prompt's own rare words make
  themselves common, and in-distribution traffic would score about twice as rare;
- `completion_logprob`: mean natural-log probability per completion token under the trained
  model (teacher-forced reference completion in training; the generated tokens when served);
- `embedding_distance`: cosine distance between the prompt's embedding and the training
  centroid.

The prompt embedding is the mean over prompt positions of the model's last hidden state (after
the final norm), the same tensor a server computes in prefill before the output layer.

Each scalar feature has fixed bin edges, chosen once from the training quantiles and stored in
the profile, so a live histogram is directly comparable. Outer bins are open (-inf, +inf).
Distances: PSI and Jensen-Shannon divergence (base 2, so in [0, 1]) between the two histograms,
with `EPSILON` added to every bin's share (then renormalized) so an empty bin gives a large but
finite score; and the cosine distance between the reference and live embedding centroids.
This module imports only numpy, so the server can use it on every request.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tuneloop.errors import DataError

PROFILE_FORMAT = 1
EPSILON = 1e-4
"""Added to each bin's share before PSI/JS (then renormalized): an empty bin in one of the two
histograms then scores high instead of infinite."""
DEFAULT_BINS = 10
DEFAULT_MIN_COUNT = 2
SCALAR_FEATURES = (
    "prompt_tokens",
    "completion_tokens",
    "rare_token_share",
    "completion_logprob",
    "embedding_distance",
)
# Common reading of PSI: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 significant shift.
PSI_MODERATE, PSI_SIGNIFICANT = 0.1, 0.25


@dataclass
class ReferenceSample:
    """What the profile needs of one training example; None where not computed."""

    prompt_ids: Sequence[int]
    completion_tokens: int | None = None
    completion_logprob: float | None = None
    embedding: Sequence[float] | None = None


@dataclass
class FeatureHistogram:
    """Counts of one feature over fixed bins: bin i holds edges[i-1] < x <= edges[i]."""

    edges: list[float]
    """Inner edges, increasing; len(edges) + 1 bins, the outer two open-ended."""
    counts: list[int]
    summary: dict[str, float] = field(default_factory=dict)
    """mean, std, min, p5, p50, p95, max of the reference values (for people reading the file)."""

    def shares(self) -> np.ndarray:
        return _shares(np.asarray(self.counts, dtype=float))


@dataclass
class ReferenceProfile:
    """Everything a server needs to score drift against the training data."""

    features: dict[str, FeatureHistogram]
    common_token_ids: list[int]
    """Token ids seen at least `min_count` times in the training prompts; all others are rare."""
    special_token_ids: list[int]
    """Ids left out of `rare_token_share` (chat-template markers, padding)."""
    centroid: list[float] | None
    """Mean of the training prompts' embeddings (see the module docstring); None if not computed."""
    n_examples: int
    min_count: int = DEFAULT_MIN_COUNT
    base: dict = field(default_factory=dict)
    """Which base model and tokenizer produced the token ids and embeddings."""
    embedding: dict = field(
        default_factory=lambda: {
            "source": "last hidden state after the final norm",
            "pooling": "mean over prompt tokens",
        }
    )
    format: int = PROFILE_FORMAT
    epsilon: float = EPSILON

    def to_json(self) -> dict:
        return asdict(self)

    def save(self, path: Path) -> None:
        text = json.dumps(self.to_json(), separators=(",", ":"))
        tmp = Path(path).with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def from_json(cls, data: dict, *, source: str = "profile") -> ReferenceProfile:
        if data.get("format") != PROFILE_FORMAT:
            raise DataError(
                f"{source}: reference profile format {data.get('format')!r} is not supported "
                f"(this tuneloop reads format {PROFILE_FORMAT})"
            )
        try:
            features = {
                name: FeatureHistogram(**hist) for name, hist in data.pop("features").items()
            }
            return cls(features=features, **data)
        except (TypeError, KeyError, AttributeError) as exc:
            raise DataError(f"{source}: malformed reference profile ({exc})") from exc

    @classmethod
    def load(cls, path: Path) -> ReferenceProfile:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: cannot read reference profile ({exc})") from exc
        return cls.from_json(data, source=str(path))

    def scorer(self) -> FeatureScorer:
        """Per-request feature functions bound to this profile (build once, reuse per request)."""
        return FeatureScorer(self)


class FeatureScorer:
    """Computes per-request features in O(tokens) with lookups prepared once."""

    def __init__(self, profile: ReferenceProfile) -> None:
        size = max([*profile.common_token_ids, *profile.special_token_ids, 0]) + 1
        self._common = np.zeros(size, dtype=bool)
        self._common[profile.common_token_ids] = True
        self._special = np.zeros(size, dtype=bool)
        self._special[profile.special_token_ids] = True
        self._centroid = None if profile.centroid is None else np.asarray(profile.centroid)

    def rare_token_share(self, prompt_ids: Sequence[int]) -> float:
        ids = np.asarray(prompt_ids, dtype=np.int64)
        known = ids < len(self._common)
        special = np.zeros(len(ids), dtype=bool)
        special[known] = self._special[ids[known]]
        counted = ids[~special]
        if counted.size == 0:
            return 0.0
        common = np.zeros(counted.size, dtype=bool)
        inside = counted < len(self._common)
        common[inside] = self._common[counted[inside]]
        return float(1.0 - common.mean())

    def embedding_distance(self, embedding: Sequence[float]) -> float:
        if self._centroid is None:
            raise ValueError("this profile has no embedding centroid")
        return cosine_distance(embedding, self._centroid)

    def features(
        self,
        prompt_ids: Sequence[int],
        *,
        completion_tokens: int | None = None,
        completion_logprobs: Sequence[float] | None = None,
        embedding: Sequence[float] | None = None,
    ) -> dict[str, float]:
        """The scalar features of one request; those whose inputs are missing are left out."""
        values = {
            "prompt_tokens": float(len(prompt_ids)),
            "rare_token_share": self.rare_token_share(prompt_ids),
        }
        if completion_tokens is not None:
            values["completion_tokens"] = float(completion_tokens)
        if completion_logprobs is not None and len(completion_logprobs):
            values["completion_logprob"] = float(np.mean(completion_logprobs))
        if embedding is not None and self._centroid is not None:
            values["embedding_distance"] = self.embedding_distance(embedding)
        return values


def common_token_ids(
    prompts: Iterable[Sequence[int]], min_count: int = DEFAULT_MIN_COUNT
) -> list[int]:
    """Ids seen at least `min_count` times across the prompts, sorted."""
    counts: dict[int, int] = {}
    for ids in prompts:
        for token in ids:
            counts[token] = counts.get(token, 0) + 1
    return sorted(int(t) for t, c in counts.items() if c >= min_count)


def quantile_edges(values: Sequence[float], n_bins: int = DEFAULT_BINS) -> list[float]:
    """Inner bin edges at the reference quantiles (deduplicated), so each bin holds ~1/n of it."""
    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    if data.size == 0:
        return []
    qs = np.quantile(data, np.linspace(0, 1, n_bins + 1)[1:-1])
    return sorted({float(q) for q in qs})


def bin_counts(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Counts per bin (len(edges) + 1 bins); bin i holds edges[i-1] < x <= edges[i]."""
    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    index = np.searchsorted(np.asarray(edges, dtype=float), data, side="left")
    return np.bincount(index, minlength=len(edges) + 1).astype(int).tolist()


def build_histogram(values: Sequence[float], n_bins: int = DEFAULT_BINS) -> FeatureHistogram:
    edges = quantile_edges(values, n_bins)
    data = np.asarray(values, dtype=float)
    summary = {}
    if data.size:
        summary = {
            "mean": float(data.mean()),
            "std": float(data.std()),
            "min": float(data.min()),
            "p5": float(np.quantile(data, 0.05)),
            "p50": float(np.quantile(data, 0.5)),
            "p95": float(np.quantile(data, 0.95)),
            "max": float(data.max()),
        }
    return FeatureHistogram(edges=edges, counts=bin_counts(values, edges), summary=summary)


def _shares(counts: np.ndarray, epsilon: float = EPSILON) -> np.ndarray:
    total = counts.sum()
    shares = counts / total if total > 0 else np.full(len(counts), 1.0 / len(counts))
    shares = shares + epsilon
    return shares / shares.sum()


def psi(reference: Sequence[float], live: Sequence[float], epsilon: float = EPSILON) -> float:
    """Population stability index between two histograms (counts or shares) over the same bins."""
    p = _shares(np.asarray(reference, dtype=float), epsilon)
    q = _shares(np.asarray(live, dtype=float), epsilon)
    _same_bins(p, q)
    return float(np.sum((q - p) * np.log(q / p)))


def js_divergence(
    reference: Sequence[float], live: Sequence[float], epsilon: float = EPSILON
) -> float:
    """Jensen-Shannon divergence in bits (0 = identical, 1 = disjoint) between two histograms."""
    p = _shares(np.asarray(reference, dtype=float), epsilon)
    q = _shares(np.asarray(live, dtype=float), epsilon)
    _same_bins(p, q)
    mid = (p + q) / 2
    return float(0.5 * _kl_bits(p, mid) + 0.5 * _kl_bits(q, mid))


def _kl_bits(p: np.ndarray, q: np.ndarray) -> float:
    nonzero = p > 0  # 0 * log 0 = 0 (only reachable with epsilon=0)
    return float(np.sum(p[nonzero] * np.log2(p[nonzero] / q[nonzero])))


def cosine_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """1 - cosine similarity (0 = same direction, 2 = opposite); 1 when either vector is zero."""
    va, vb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    norm = float(np.linalg.norm(va) * np.linalg.norm(vb))
    if norm == 0.0 or not math.isfinite(norm):
        return 1.0
    return float(1.0 - np.dot(va, vb) / norm)


def _same_bins(p: np.ndarray, q: np.ndarray) -> None:
    if p.shape != q.shape:
        raise ValueError(f"histograms have different bins ({len(p)} vs {len(q)})")


def drift_scores(
    profile: ReferenceProfile,
    window: Sequence[dict[str, float]],
    embeddings: Sequence[Sequence[float]] = (),
) -> dict[str, dict[str, float]]:
    """Score a window of per-request features against the profile: {feature: {method: score}}.

    `window` holds the dicts of `FeatureScorer.features`; `embeddings` the prompt embeddings of
    the same requests, for the centroid distance (feature `embedding`, method `cosine`).
    """
    scores: dict[str, dict[str, float]] = {}
    for name, hist in profile.features.items():
        values = [f[name] for f in window if name in f]
        if not values:
            continue
        live = bin_counts(values, hist.edges)
        scores[name] = {
            "psi": psi(hist.counts, live, profile.epsilon),
            "js": js_divergence(hist.counts, live, profile.epsilon),
        }
    if len(embeddings) and profile.centroid is not None:
        live_centroid = np.mean(np.asarray(embeddings, dtype=float), axis=0)
        scores["embedding"] = {"cosine": cosine_distance(live_centroid, profile.centroid)}
    return scores


def build_profile(
    samples: Sequence[ReferenceSample],
    *,
    training_prompts: Iterable[Sequence[int]],
    special_token_ids: Sequence[int],
    base: dict | None = None,
    min_count: int = DEFAULT_MIN_COUNT,
    n_bins: int = DEFAULT_BINS,
) -> ReferenceProfile:
    """The reference profile of training examples (`samples`) and all training prompt ids.

    The rare-token set comes from `training_prompts` (all of the training split, cheap); the
    histograms from `samples` (which may be a subset, since log-probabilities and embeddings
    need a forward pass each). Each sample's prompt is one of the training prompts.
    """
    training_prompts_list = [list(ids) for ids in training_prompts]
    common = common_token_ids(training_prompts_list, min_count)
    embeddings = [s.embedding for s in samples if s.embedding is not None]
    centroid = np.mean(np.asarray(embeddings, dtype=float), axis=0).tolist() if embeddings else None
    profile = ReferenceProfile(
        features={},
        common_token_ids=common,
        special_token_ids=sorted({int(t) for t in special_token_ids}),
        centroid=centroid,
        n_examples=len(samples),
        min_count=min_count,
        base=base or {},
    )
    scorer = profile.scorer()
    held_out_share = _leave_one_out_rare_share(training_prompts_list, special_token_ids, min_count)
    columns: dict[str, list[float]] = {name: [] for name in SCALAR_FEATURES}
    for sample in samples:
        logprobs = None if sample.completion_logprob is None else [sample.completion_logprob]
        values = scorer.features(
            sample.prompt_ids,
            completion_tokens=sample.completion_tokens,
            completion_logprobs=logprobs,
            embedding=sample.embedding,
        )
        values["rare_token_share"] = held_out_share(sample.prompt_ids)
        if sample.embedding is not None and centroid is not None:
            values["embedding_distance"] = _held_out_distance(
                sample.embedding, centroid, len(embeddings)
            )
        for name, value in values.items():
            columns[name].append(value)
    profile.features = {
        name: build_histogram(values, n_bins) for name, values in columns.items() if values
    }
    return profile


def _held_out_distance(embedding: Sequence[float], centroid: Sequence[float], n: int) -> float:
    """Cosine distance of a sample to the centroid of the *other* samples.

    In-sample, each embedding pulls the centroid towards itself (by 1/n), so training prompts
    would read as closer than any served prompt can be; served prompts are never part of the
    centroid, so the reference is measured the same way.
    """
    if n < 2:
        return cosine_distance(embedding, centroid)
    vector = np.asarray(embedding, dtype=float)
    others = (np.asarray(centroid, dtype=float) * n - vector) / (n - 1)
    return cosine_distance(vector, others)


def _leave_one_out_rare_share(
    training_prompts: list[list[int]], special_token_ids: Sequence[int], min_count: int
):
    """rare_token_share of a training prompt with its own tokens left out of the counts."""
    counts: dict[int, int] = {}
    for ids in training_prompts:
        for token in ids:
            counts[token] = counts.get(token, 0) + 1
    special = {int(t) for t in special_token_ids}

    def share(prompt_ids: Sequence[int]) -> float:
        own: dict[int, int] = {}
        for token in prompt_ids:
            own[token] = own.get(token, 0) + 1
        counted = [t for t in prompt_ids if t not in special]
        if not counted:
            return 0.0
        rare = sum(counts.get(t, 0) - own[t] < min_count for t in counted)
        return rare / len(counted)

    return share
