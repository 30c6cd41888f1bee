"""Drift through a real server process: the adapter's profile is found, /metrics exports the
window and the scores, out-of-distribution traffic raises them, and prompts served while
drift is high land, redacted, in the export folder."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tuneloop.bench.ood_prompts import ood_prompts
from tuneloop.data_formats import parse_file
from tuneloop.demo import DEMO_DATA

pytestmark = pytest.mark.integration  # a real server process

WINDOW = 40
TICKETS = [json.loads(line) for line in DEMO_DATA.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def triage_adapter(tmp_path_factory, chatty_model_dir, adapter_root, smollm2_tokenizer):
    """The `alpha` LoRA adapter with the reference profile of 200 demo tickets under it."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tuneloop.train.encoding import encode
    from tuneloop.train.profile import reference_profile

    folder = tmp_path_factory.mktemp("triage") / "triage"
    shutil.copytree(adapter_root / "alpha", folder)
    tokenizer = smollm2_tokenizer  # the chatty model's own
    base = AutoModelForCausalLM.from_pretrained(chatty_model_dir)
    model = PeftModel.from_pretrained(base, folder).eval()
    encoded = [encode(tokenizer, t["messages"]) for t in TICKETS[:200]]
    profile = reference_profile(model, tokenizer, encoded, sample=200, seed=0, base={})
    profile.save(folder / "reference_profile.json")
    return folder


def chat(url: str, content: str) -> None:
    body = {
        "model": "triage",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 4,
        "temperature": 0,
    }
    httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120).raise_for_status()


def send(url: str, prompts: list[str]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: chat(url, p), prompts))


def drift_metrics(url: str) -> tuple[float, dict[tuple[str, str], float]]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    window, scores = 0.0, {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("adapter") != "triage":
                continue
            if sample.name == "tuneloop_drift_window_requests":
                window = sample.value
            elif sample.name == "tuneloop_drift_score":
                scores[sample.labels["feature"], sample.labels["method"]] = sample.value
    return window, scores


def wait_for(url: str, predicate, timeout_s: float = 30):
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        window, scores = drift_metrics(url)
        if predicate(window, scores) or time.monotonic() > deadline:
            return window, scores
        time.sleep(0.2)


def test_drift_scores_rise_on_other_traffic_and_drifted_prompts_are_exported(
    serve_process, chatty_model_dir, triage_adapter, tmp_path
):
    export = tmp_path / "drifted"
    env = {
        "TUNELOOP_DRIFT_WINDOW": str(WINDOW),
        "TUNELOOP_DRIFT_MIN_REQUESTS": str(WINDOW),
        "TUNELOOP_DRIFT_INTERVAL_S": "0.2",
        "TUNELOOP_DRIFT_EXPORT_DIR": str(export),
    }
    server = serve_process(
        ["--base", str(chatty_model_dir), "--adapter", f"triage={triage_adapter}"], env
    )
    assert drift_metrics(server.url) == (0.0, {})  # loaded, watched, nothing scored yet
    tickets = [t["messages"][0]["content"] for t in TICKETS[300 : 300 + WINDOW]]
    send(server.url, tickets[: WINDOW - 1])
    window, scores = wait_for(server.url, lambda w, s: w == WINDOW - 1)
    assert window == WINDOW - 1 and not scores  # below the minimum count: no score at all
    send(server.url, tickets[WINDOW - 1 :])
    _, calm = wait_for(server.url, lambda w, s: bool(s))
    assert {("prompt_tokens", "psi"), ("rare_token_share", "js"), ("embedding", "cosine")} <= set(
        calm
    )
    assert ("embedding_distance", "psi") in calm and ("completion_logprob", "psi") in calm
    assert not export.exists()  # in distribution: nothing exported
    send(server.url, ood_prompts(WINDOW))
    _, shifted = wait_for(server.url, lambda w, s: s.get(("rare_token_share", "psi"), 0) > 1)
    assert shifted["rare_token_share", "psi"] > max(1, 3 * calm["rare_token_share", "psi"])
    assert shifted["embedding", "cosine"] > calm["embedding", "cosine"]
    path = export / "triage.jsonl"

    def exported_contacts() -> int:
        # exports of the out-of-distribution prompts may still be arriving: count only ours
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        return sum("Contact me at" in line for line in text.splitlines())

    send(server.url, ["Contact me at jane@example.com, card 4111 1111 1111 1111."] * 3)
    wait_for(server.url, lambda w, s: exported_contacts() >= 3)
    fmt, examples, problems = parse_file(path)
    assert fmt == "chat" and not problems and len(examples) >= 3
    text = path.read_text(encoding="utf-8")
    # The card's digit groups, not "4111" alone: the log's random request ids are hex and
    # sometimes contain those four digits.
    card = "4111 1111"
    assert "[EMAIL]" in text and "[CARD]" in text and "jane@" not in text and card not in text
    assert "jane@" not in server.log() and card not in server.log()
