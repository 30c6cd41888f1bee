"""The drift reference profile: its distances, histograms, rare tokens and file format."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tuneloop.drift_profile import (
    EPSILON,
    ReferenceProfile,
    ReferenceSample,
    bin_counts,
    build_profile,
    common_token_ids,
    cosine_distance,
    drift_scores,
    js_divergence,
    psi,
    quantile_edges,
)
from tuneloop.errors import DataError


def test_identical_distributions_score_zero():
    counts = [5, 10, 20, 10, 5]
    assert psi(counts, counts) == pytest.approx(0.0, abs=1e-12)
    assert js_divergence(counts, counts) == pytest.approx(0.0, abs=1e-12)
    # counts and shares of the same distribution are the same histogram
    assert psi(counts, [c * 3 for c in counts]) == pytest.approx(0.0, abs=1e-12)


def test_psi_of_a_known_shift():
    # Hand-computed: p = (.5, .5), q = (.8, .2):
    # (.8-.5) ln(.8/.5) + (.2-.5) ln(.2/.5) = .3*0.470004 + .3*0.916291 = 0.415888
    expected = 0.3 * math.log(1.6) + 0.3 * math.log(2.5)
    assert psi([50, 50], [80, 20], epsilon=0.0) == pytest.approx(expected, rel=1e-9)
    assert psi([50, 50], [80, 20]) == pytest.approx(expected, rel=1e-3)


def test_js_of_known_cases():
    # disjoint supports: 1 bit (up to the epsilon)
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0, abs=5e-3)
    # p = (1, 0), q = (.5, .5), m = (.75, .25):
    # JS = .5 log2(1/.75) + .5 (.5 log2(.5/.75) + .5 log2(.5/.25))
    expected = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(2 / 3) + 0.5)
    assert js_divergence([1, 0], [1, 1], epsilon=0.0) == pytest.approx(expected, rel=1e-9)


def test_empty_bin_gives_a_finite_score():
    score = psi([10, 10, 0], [0, 10, 10])
    assert math.isfinite(score) and score > 1.0
    assert EPSILON > 0


def test_cosine_distance():
    assert cosine_distance([1, 0], [2, 0]) == pytest.approx(0.0)
    assert cosine_distance([1, 0], [0, 3]) == pytest.approx(1.0)
    assert cosine_distance([1, 1], [-1, -1]) == pytest.approx(2.0)
    assert cosine_distance([0, 0], [1, 0]) == 1.0


def test_bins_are_right_closed_with_open_outer_bins():
    edges = [1.0, 2.0]
    assert bin_counts([-5, 1, 1.5, 2, 2.01, 100], edges) == [2, 2, 2]
    assert bin_counts([float("nan")], edges) == [0, 0, 0]


def test_quantile_edges_split_the_reference_evenly():
    values = np.arange(1000)
    edges = quantile_edges(values, 10)
    counts = bin_counts(values, edges)
    assert len(counts) == 10 and max(counts) - min(counts) <= 1
    assert quantile_edges([3, 3, 3, 3]) == [3.0]  # ties collapse instead of empty bins


def test_common_tokens_need_min_count():
    assert common_token_ids([[1, 2, 2], [2, 3, 1]], min_count=2) == [1, 2]


def make_profile(rng, n=200, shift=0.0):
    samples = [
        ReferenceSample(
            prompt_ids=list(rng.integers(10, 30, size=int(rng.integers(20, 60) + shift))),
            completion_tokens=int(rng.integers(30, 50)),
            completion_logprob=float(rng.normal(-0.5, 0.1)),
            embedding=list(rng.normal(1.0, 0.1, size=8)),
        )
        for _ in range(n)
    ]
    prompts = [s.prompt_ids for s in samples]
    return build_profile(samples, training_prompts=prompts, special_token_ids=[0, 1]), samples


def test_profile_scores_its_own_data_as_stable_and_shifted_data_as_drift():
    rng = np.random.default_rng(0)
    profile, samples = make_profile(rng)
    scorer = profile.scorer()
    same = [scorer.features(s.prompt_ids, completion_tokens=s.completion_tokens) for s in samples]
    scores = drift_scores(profile, same, [s.embedding for s in samples])
    assert scores["prompt_tokens"]["psi"] == pytest.approx(0.0, abs=1e-9)
    assert scores["embedding"]["cosine"] == pytest.approx(0.0, abs=1e-9)

    long_prompts = [scorer.features(list(range(10, 30)) * 5) for _ in range(50)]
    shifted = drift_scores(profile, long_prompts, [[-1.0] * 8] * 50)
    assert shifted["prompt_tokens"]["psi"] > 1.0
    assert shifted["embedding"]["cosine"] > 1.5


def test_rare_token_share_ignores_special_tokens_and_counts_unknown_ids():
    profile = build_profile(
        [ReferenceSample(prompt_ids=[5, 5, 6])],
        training_prompts=[[5, 5, 6]],
        special_token_ids=[0],
        min_count=2,
    )
    scorer = profile.scorer()
    assert scorer.rare_token_share([0, 5, 5]) == 0.0  # 0 is special, 5 is common
    assert scorer.rare_token_share([5, 6]) == 0.5  # 6 was seen once: rare
    assert scorer.rare_token_share([5, 99999]) == 0.5  # never seen: rare
    assert scorer.rare_token_share([0]) == 0.0


def test_profile_round_trips_and_refuses_other_formats(tmp_path):
    profile, _ = make_profile(np.random.default_rng(1), n=30)
    path = tmp_path / "reference_profile.json"
    profile.save(path)
    loaded = ReferenceProfile.load(path)
    assert loaded.features["prompt_tokens"].counts == profile.features["prompt_tokens"].counts
    assert loaded.centroid == pytest.approx(profile.centroid)
    data = loaded.to_json()
    data["format"] = 99
    with pytest.raises(DataError, match="format 99"):
        ReferenceProfile.from_json(data)


def test_reference_rare_share_is_held_out_like_a_new_prompt():
    """Counted in-sample, a training prompt's own once-seen tokens would make themselves common;
    left out, its share is what the same prompt gets when it arrives new."""
    prompts = [[5, 5, 6], [5, 7], [5, 8], [9, 9]]
    profile = build_profile(
        [ReferenceSample(prompt_ids=p) for p in prompts],
        training_prompts=prompts,
        special_token_ids=[0],
        min_count=2,
    )
    # 5 is seen 4 times (2 in the first prompt): common for every prompt even held out;
    # 9 only in the last prompt: common in-sample, rare held out
    values = {
        "[5, 5, 6]": 1 / 3,
        "[5, 7]": 0.5,
        "[5, 8]": 0.5,
        "[9, 9]": 1.0,
    }
    histogram = profile.features["rare_token_share"]
    expected = bin_counts(list(values.values()), histogram.edges)
    assert histogram.counts == expected
    assert profile.scorer().rare_token_share([9, 9]) == 0.0  # in-sample it looks common
