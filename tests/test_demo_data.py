"""The bundled support-ticket demo set: format contract, balance, variety, and no drift from its
generator. No model is needed; the whole file runs in well under a second."""

import collections
import itertools
import json
import re
import statistics

import pytest

from tuneloop.demo import DATA_CARD, DEMO_DATA
from tuneloop.demo.generate import CATEGORIES, generate, slots_in, write_jsonl
from tuneloop.demo.phrases import INTENTS

LABELS = {"billing", "shipping", "returns", "technical", "account"}
ORDER_RE = re.compile(r"#?([A-Z]\d{5})\b")


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return DEMO_DATA.read_text(encoding="utf-8").split("\n")[:-1]


@pytest.fixture(scope="module")
def examples(lines) -> list[dict]:
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def tickets(examples) -> list[str]:
    return [e["messages"][0]["content"] for e in examples]


@pytest.fixture(scope="module")
def answers(examples) -> list[dict]:
    return [json.loads(e["messages"][1]["content"]) for e in examples]


def test_file_is_utf8_jsonl_with_unix_newlines():
    raw = DEMO_DATA.read_bytes()
    assert raw.endswith(b"\n") and not raw.endswith(b"\n\n")
    assert b"\r" not in raw
    for line in raw.decode("utf-8").split("\n")[:-1]:
        json.loads(line)


def test_every_example_is_one_user_turn_and_one_assistant_turn(examples):
    for example in examples:
        assert list(example) == ["messages"]
        user, assistant = example["messages"]  # exactly two turns, so no system message
        assert list(user) == ["role", "content"] and user["role"] == "user"
        assert list(assistant) == ["role", "content"] and assistant["role"] == "assistant"
        assert isinstance(user["content"], str) and user["content"].strip()


def test_assistant_content_is_the_exact_json_contract(examples, answers):
    for example, answer in zip(examples, answers, strict=True):
        assert list(answer) == ["category", "reply"]
        assert answer["category"] in LABELS
        assert isinstance(answer["reply"], str) and answer["reply"].strip()
        expected = json.dumps(answer, ensure_ascii=False)
        assert example["messages"][1]["content"] == expected


def test_lines_are_written_with_json_dumps_defaults(lines, examples):
    for line, example in zip(lines, examples, strict=True):
        assert line == json.dumps(example, ensure_ascii=False)


def test_enough_examples_and_balanced_classes(answers):
    counts = collections.Counter(a["category"] for a in answers)
    assert len(answers) >= 1000
    assert set(counts) == LABELS
    assert max(counts.values()) <= 1.2 * min(counts.values())


def test_no_ticket_is_repeated(tickets):
    assert len(set(tickets)) == len(tickets)
    normalised = {" ".join(t.lower().split()) for t in tickets}
    assert len(normalised) == len(tickets)


def test_tickets_open_in_many_different_ways(tickets):
    openings = collections.Counter(" ".join(t.lower().split()[:5]) for t in tickets)
    assert len(openings) >= 0.5 * len(tickets)
    assert openings.most_common(1)[0][1] <= 0.04 * len(tickets)  # a common greeting, at most


def test_tickets_in_one_category_share_few_words(tickets, answers):
    # Templated data shows up as high word overlap between tickets of the same label; real
    # tickets about the same topic still overlap little. Mean Jaccard over word sets, per label.
    for label in LABELS:
        words = [
            set(t.lower().split())
            for t, a in zip(tickets, answers, strict=True)
            if a["category"] == label
        ][:150]
        overlaps = [len(x & y) / len(x | y) for x, y in itertools.combinations(words, 2)]
        assert statistics.mean(overlaps) < 0.2, label


def test_ticket_lengths_range_from_one_liners_to_stories(tickets):
    words = [len(t.split()) for t in tickets]
    assert min(words) <= 5 and max(words) <= 130
    assert 25 <= statistics.median(words) <= 45
    assert sum(w > 80 for w in words) <= 0.1 * len(words)


def test_replies_are_short_and_only_quote_real_order_numbers(tickets, answers):
    for ticket, answer in zip(tickets, answers, strict=True):
        reply = answer["reply"]
        assert 10 <= len(reply.split()) <= 50, reply
        assert len(re.findall(r"[.?!](?:\s|$)", reply)) <= 2, reply
        for order in ORDER_RE.findall(reply):
            assert order in ticket, (order, ticket)


def test_replies_greet_only_customers_who_signed_their_name(tickets, answers):
    for ticket, answer in zip(tickets, answers, strict=True):
        greeting = re.match(r"Hi (\w+), ", answer["reply"])
        if greeting:
            assert greeting.group(1).lower() in ticket.lower(), (ticket, answer["reply"])


def test_only_reserved_example_domains_appear_in_emails(tickets, answers):
    text = "\n".join(tickets + [a["reply"] for a in answers])
    for domain in re.findall(r"@([\w.-]+\w)", text):
        assert domain in {"example.com", "example.org", "example.net"}


def test_shipped_file_is_exactly_what_the_generator_writes(tmp_path):
    fresh = tmp_path / "support_triage.jsonl"
    write_jsonl(generate(), fresh)
    assert fresh.read_bytes() == DEMO_DATA.read_bytes(), (
        "the demo file drifted from its generator: run python -m tuneloop.demo.generate"
    )


def test_other_sizes_and_seeds_stay_balanced_and_deterministic():
    first = generate(n=103, seed=7)
    assert first == generate(n=103, seed=7)
    counts = collections.Counter(json.loads(e["messages"][1]["content"])["category"] for e in first)
    assert sorted(counts.values()) == [20, 20, 21, 21, 21]


def test_every_intent_can_reply_to_a_ticket_without_details():
    # A reply template is used only if the ticket mentioned all its slots, so each intent needs
    # at least one acknowledgement and next step that name none, and asks when it needs a slot.
    assert set(INTENTS) == set(CATEGORIES) == LABELS
    for intents in INTENTS.values():
        for intent in intents:
            assert any(not slots_in(t) for t in intent.acks), intent.name
            assert any(not slots_in(t) for t in intent.nexts), intent.name
            assert bool(intent.need) == bool(intent.asks), intent.name


def test_data_card_documents_every_label_and_how_to_regenerate():
    card = DATA_CARD.read_text(encoding="utf-8")
    assert "python -m tuneloop.demo.generate" in card and "2026" in card
    for label in LABELS:
        assert f"`{label}`" in card
