"""The real embedded model behind `tuneloop serve`, with a LoRA adapter, via the openai client."""

from __future__ import annotations

import pytest

from serving.serve_helpers import make_lora_adapter

pytestmark = pytest.mark.integration


def test_embedded_model_with_an_adapter_through_the_openai_client(
    serve_process, embedded_model_dir, tmp_path
):
    import openai

    adapter = tmp_path / "support-triage"
    adapter.mkdir()
    make_lora_adapter(embedded_model_dir, adapter, seed=3)
    server = serve_process(["--adapter", f"support-triage={adapter}"])
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    ids = {m.id for m in client.models.list()}
    assert ids == {"smollm2-135m-instruct", "support-triage"}
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    base = client.chat.completions.create(
        model="smollm2-135m-instruct", messages=messages, max_tokens=20, temperature=0
    )
    assert "Paris" in base.choices[0].message.content
    assert base.choices[0].finish_reason == "stop", "the end token must end the answer"
    tuned = client.chat.completions.create(
        model="support-triage", messages=messages, max_tokens=12, temperature=0
    )
    streamed = client.chat.completions.create(
        model="support-triage", messages=messages, max_tokens=12, temperature=0, stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    assert text == tuned.choices[0].message.content != base.choices[0].message.content
