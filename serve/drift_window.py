"""One sliding window of served requests' drift features, scored against one reference profile.

The engine's worker thread `add`s each finished request (features only: a few floats and the
prompt embedding); a background thread `score`s the window at most once per interval. Both
take the window's lock, which the worker holds for a deque append.

Prompt features (`prompt_tokens`, `rare_token_share`, `embedding_distance`, the embedding
centroid) are compared with the training profile. Answer features (`completion_tokens`,
`completion_logprob`) are not: the profile measures the training answers teacher-forced,
while a server sees the model's own answers, which are far more likely under the model
(on the demo tickets the embedded model's greedy answers average -0.68 nats per token, the
reference answers -3.2) and shaped by each client's sampling settings. So they are compared
with a served baseline instead: the histograms (quantile bins, as in training) of the first
full window after the model loads. Until then they have no score.

Completion features are censored by `max_tokens`: a choice that stopped at its length limit
says nothing about how long the answer would have been, so it adds no `completion_tokens`
value (its mean log-probability still counts). Without this, every client that caps
`max_tokens` below the training answers' length would read as drift.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from tuneloop.drift_profile import ReferenceProfile, build_histogram, drift_scores
from tuneloop.serve.requests import FinishReason, RequestRecord

SCORED_OUTCOMES = (FinishReason.STOP, FinishReason.LENGTH)
ANSWER_FEATURES = ("completion_tokens", "completion_logprob")


class DriftWindow:
    def __init__(self, profile: ReferenceProfile, size: int, min_requests: int) -> None:
        self.profile = profile
        self.scorer = profile.scorer()
        self.min_requests = min_requests
        self._features: deque[dict[str, float]] = deque(maxlen=size)
        self._embeddings: deque[np.ndarray | None] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._added = 0
        self._scored_at = 0
        self._baseline: ReferenceProfile | None = None
        """The training profile with the answer features of the first full window."""

    def __len__(self) -> int:
        return len(self._features)

    def add(self, record: RequestRecord) -> bool:
        """Add a finished request's features; False (nothing added) if it did not finish."""
        if record.outcome not in SCORED_OUTCOMES or not record.prompt_ids:
            return False
        features = request_features(self.scorer, record)
        with self._lock:
            self._features.append(features)
            self._embeddings.append(record.prompt_embedding)
            self._added += 1
        return True

    @property
    def changed(self) -> bool:
        """Has a request arrived since the last `score`?"""
        return self._added != self._scored_at

    def score(self) -> dict[str, dict[str, float]]:
        """{feature: {method: score}} for features with at least `min_requests` values."""
        with self._lock:
            window = list(self._features)
            embeddings = [e for e in self._embeddings if e is not None]
            self._scored_at = self._added
            full = len(window) == self._features.maxlen
        if self._baseline is None and full:
            self._baseline = with_served_baseline(self.profile, window, self.min_requests)
        reference = self._baseline or without_answer_features(self.profile)
        return score_window(reference, window, embeddings, self.min_requests)


def without_answer_features(profile: ReferenceProfile) -> ReferenceProfile:
    features = {k: v for k, v in profile.features.items() if k not in ANSWER_FEATURES}
    return replace(profile, features=features)


def with_served_baseline(
    profile: ReferenceProfile, window: Sequence[dict[str, float]], min_requests: int
) -> ReferenceProfile:
    """The profile with its answer features replaced by histograms of `window`'s answers
    (those measured on fewer than `min_requests` requests stay unscored)."""
    features = dict(without_answer_features(profile).features)
    for name in ANSWER_FEATURES:
        values = [f[name] for f in window if name in f]
        if len(values) >= min_requests:
            features[name] = build_histogram(values)
    return replace(profile, features=features)


def request_features(scorer, record: RequestRecord) -> dict[str, float]:
    """The drift features of one served request (its first choice)."""
    logprobs = record.output_logprobs[0] if record.output_logprobs else None
    completion_tokens = None
    if record.finish_reasons and record.finish_reasons[0] == FinishReason.STOP:
        # tokens scored as the reference scores them: the answer and its end token
        completion_tokens = len(logprobs) if logprobs else record.completion_tokens[0]
    return scorer.features(
        record.prompt_ids,
        completion_tokens=completion_tokens,
        completion_logprobs=logprobs,
        embedding=record.prompt_embedding,
    )


def score_window(
    profile: ReferenceProfile,
    window: Sequence[dict[str, float]],
    embeddings: Sequence[Sequence[float]],
    min_requests: int,
) -> dict[str, dict[str, float]]:
    """`drift_scores`, keeping only features measured on at least `min_requests` requests:
    on fewer, PSI mostly measures sampling noise (an empty bin alone scores ~0.7)."""
    scores = drift_scores(profile, window, embeddings if len(embeddings) >= min_requests else ())
    counts = {name: sum(name in f for f in window) for name in profile.features}
    return {
        name: methods
        for name, methods in scores.items()
        if name == "embedding" or counts.get(name, 0) >= min_requests
    }
