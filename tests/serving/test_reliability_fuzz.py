"""Fuzzing: schemathesis generates requests from the server's own OpenAPI schema, valid and
invalid, for every operation. None may get a 5xx, and every error must carry OpenAI's body.

The app runs in-process over the fake model with the real SmolLM2 tokenizer (so chat
templates run), with a small `max_tokens_limit` so each generated request is cheap.
"""

from __future__ import annotations

import collections

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402  (schemathesis brings it)
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

from serving.serve_fakes import FakeBackend, fake_state  # noqa: E402
from tuneloop.serve.app import build_app  # noqa: E402
from tuneloop.serve.settings import Settings  # noqa: E402

ADMIN_KEY = "fuzzing-admin-key-0123456789"
EXAMPLES_PER_OPERATION = 40
SERVED_OR_NOT = st.sampled_from(["fake", "alpha", "fake", "alpha", None])


@pytest.fixture
def fuzzed_app(smollm2_tokenizer, tmp_path_factory):
    backend = FakeBackend(adapters=["alpha"])
    backend.tokenizer = smollm2_tokenizer
    settings = Settings(
        admin_key=ADMIN_KEY,
        adapter_dir=tmp_path_factory.mktemp("adapters"),
        max_tokens_limit=8,
        default_max_tokens=8,
        max_prompt_tokens=256,
        max_batch_size=16,
        max_waiting=256,
        request_timeout_s=30,
    )
    state = fake_state(settings, backend)
    yield build_app(state)
    state.engine.stop()


@pytest.fixture
def api_schema(fuzzed_app):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)


def operations(schema) -> list:
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_the_schema_allows_or_breaks_gets_a_5xx(api_schema, mode):
    ops = operations(api_schema)
    assert {"/v1/chat/completions", "/v1/completions", "/admin/adapters"} <= {op.path for op in ops}
    unbreakable, statuses = [], collections.Counter()
    for operation in ops:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,  # the same examples on every run: a failure is reproducible
            database=None,
            phases=[Phase.explicit, Phase.generate],  # a failure is reported as it happened
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode), model=SERVED_OR_NOT)
        def call(case, model):
            if model and isinstance(case.body, dict) and "model" in case.body:
                case.body["model"] = model  # mostly served ids, so requests reach the model
            response = case.call(headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            statuses[(case.operation.path, response.status_code)] += 1
            where = f"{case.method} {case.formatted_path} {case.body!r:.300}"
            assert response.status_code < 500, f"{where}: {response.text[:500]}"
            if response.status_code >= 400:
                error = response.json()["error"]
                assert set(error) == {"message", "type", "param", "code"}, where
                assert isinstance(error["message"], str) and error["message"], where

        try:
            call()
        except Unsatisfiable:  # no input to break (GET /health): nothing to fuzz negatively
            assert mode == GenerationMode.NEGATIVE and not operation.body, operation.path
            unbreakable.append(operation.path)
    assert "/v1/chat/completions" not in unbreakable
    print(f"\n{mode}: {sum(statuses.values())} requests, by path and status: {dict(statuses)}")
