"""`tuneloop monitor drift`: offline scores of a file against a profile, exit codes for CI."""

from __future__ import annotations

import json

import pytest

from tuneloop.bench.ood_prompts import ood_prompts
from tuneloop.demo import DEMO_DATA
from tuneloop.errors import DataError, UsageError
from tuneloop.serve.cli import monitor_drift

DEMO = DEMO_DATA.read_text(encoding="utf-8").splitlines()


@pytest.fixture(autouse=True)
def loaded_tokenizer(monkeypatch, smollm2_tokenizer):
    """The command loads its tokenizer each time; the tests share one (the tiny model's)."""
    monkeypatch.setattr("tuneloop.base_model.load_tokenizer", lambda base: smollm2_tokenizer)


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory, tiny_model_dir, smollm2_tokenizer):
    """The reference profile of 300 demo tickets under the tiny model, as training writes it."""
    from tuneloop.base_model import load_model
    from tuneloop.train.encoding import encode
    from tuneloop.train.profile import reference_profile

    tokenizer = smollm2_tokenizer
    examples = [json.loads(line) for line in DEMO[:300]]
    encoded = [encode(tokenizer, e["messages"]) for e in examples]
    model = load_model(str(tiny_model_dir))
    profile = reference_profile(
        model, tokenizer, encoded, sample=300, seed=0, base={"spec": str(tiny_model_dir)}
    )
    path = tmp_path_factory.mktemp("profile") / "reference_profile.json"
    profile.save(path)
    return path


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_in_distribution_tickets_are_stable_and_exit_0(profile_path, tmp_path, capsys):
    data = tmp_path / "tickets.jsonl"
    data.write_text("\n".join(DEMO[400:700]) + "\n", encoding="utf-8")
    assert monitor_drift(data=data, reference=profile_path, json=True) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["requests"] == 300 and not report["drifted"]
    psi = {f: m["psi"] for f, m in report["scores"].items()}
    assert set(psi) == {"prompt_tokens", "rare_token_share", "completion_tokens"}
    assert max(psi.values()) < 0.25, psi
    assert "completion_logprob" in report["features_skipped"]  # needs the model


def test_other_topics_and_languages_drift_and_exit_1(profile_path, tmp_path, capsys):
    data = write(tmp_path / "ood.jsonl", [{"prompt": p} for p in ood_prompts(60)])
    assert monitor_drift(data=data, reference=profile_path) == 1
    table = capsys.readouterr().out
    assert "rare_token_share     psi" in table and "significant" in table
    assert "DRIFT" in table
    assert "the file has no answers" in table
    # a looser gate lets the same file through
    assert monitor_drift(data=data, reference=profile_path, threshold=1e9) == 0


def test_with_the_model_answers_and_embeddings_are_scored(
    profile_path, tiny_model_dir, tmp_path, capsys
):
    data = tmp_path / "tickets.jsonl"
    data.write_text("\n".join(DEMO[400:460]) + "\n", encoding="utf-8")
    monitor_drift(data=data, reference=profile_path, base=str(tiny_model_dir), json=True)
    report = json.loads(capsys.readouterr().out)
    assert {"completion_logprob", "embedding_distance", "embedding"} <= set(report["scores"])
    assert report["scores"]["embedding"]["cosine"] < 0.05
    assert report["verdicts"]["completion_logprob"] in ("stable", "moderate", "significant")


def test_chat_prompts_without_answers_are_read(profile_path, tmp_path, capsys):
    records = [{"messages": [{"role": "user", "content": p}]} for p in ood_prompts(20)]
    data = write(tmp_path / "prompts.jsonl", records)
    monitor_drift(data=data, reference=profile_path, json=True)
    report = json.loads(capsys.readouterr().out)
    assert report["requests"] == 20 and "completion_tokens" not in report["scores"]


def test_bad_inputs_name_the_problem(profile_path, tmp_path):
    with pytest.raises(UsageError, match="--reference"):
        monitor_drift(data=tmp_path / "x.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"text": 1}\n')
    with pytest.raises(DataError, match="bad.jsonl:2: no prompt found"):
        monitor_drift(data=bad, reference=profile_path)
    with pytest.raises(DataError, match="cannot read reference profile"):
        monitor_drift(data=bad, reference=tmp_path / "missing.json")
