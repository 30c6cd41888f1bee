"""The draft table: what it keeps, what it proposes, and its file."""

from __future__ import annotations

import json

import pytest

from tuneloop.errors import ModelLoadError
from tuneloop.optimize.ngram_draft import (
    DRAFT_FILE,
    DraftOptions,
    NgramDraft,
    add_draft,
    draft_from_data,
)


def test_only_answer_tokens_that_follow_a_context_often_enough_are_kept():
    # 9 = prompt; the answers say 1 2 3 4 three times, and 1 2 7 once.
    sequences = [([9, 9, 1, 2, 3, 4], 2)] * 3 + [([9, 9, 1, 2, 7], 2)]
    draft = NgramDraft.build(sequences, DraftOptions(order=2, min_count=3, min_share=0.7))
    assert draft.table[(1, 2)] == 3  # 3 of 4 times
    assert draft.table[(9, 1)] == 2 and draft.table[(9,)] == 1  # contexts reach into the prompt
    assert 9 not in draft.table.values(), "a prompt token is never predicted"
    strict = NgramDraft.build(sequences, DraftOptions(order=2, min_count=3, min_share=0.8))
    assert (1, 2) not in strict.table and (2,) not in strict.table


def test_the_table_drafts_token_by_token_until_unsure():
    draft = NgramDraft.build([([5, 1, 2, 3, 4], 1)] * 3, DraftOptions(order=2))
    assert draft.propose([8, 1], limit=8) == [2, 3, 4]
    assert draft.propose([8, 1], limit=2) == [2, 3]
    assert draft.propose([8, 6], limit=4) == []
    assert draft.propose([1], limit=0) == []


def test_the_conversation_is_looked_up_before_the_table():
    draft = NgramDraft.build([([5, 1, 2, 3], 1)] * 3, DraftOptions(order=2))
    # "7 1" occurred earlier in the context, followed by 40 41: copied (names, numbers), as
    # many tokens as the match is long.
    assert draft.propose([7, 1, 40, 41, 42, 0, 7, 1], limit=3) == [40, 41]
    assert draft.propose([3, 7, 1, 40, 41, 42, 43, 0, 3, 7, 1], limit=4) == [40, 41, 42]
    assert draft.propose([3, 7, 1, 40, 41, 42, 43, 0, 3, 7, 1], limit=1) == [40]
    # One shared token is not enough of a match; the table answers instead.
    assert draft.propose([3, 1, 40, 0, 7, 1], limit=2) == [2, 3]


def test_the_heads_guesses_come_after_a_long_match_and_before_a_short_one_and_the_table():
    draft = NgramDraft.build([([5, 1, 2, 3, 4], 1)] * 3, DraftOptions(order=2))
    # 3 tokens "3 7 1" matched earlier: the copy wins over the heads.
    assert draft.propose([3, 7, 1, 40, 41, 42, 0, 3, 7, 1], 4, guesses=[9]) == [40, 41, 42]
    # Only "7 1" matched: the heads' guesses, continued from the table (after 2: 3, 4).
    assert draft.propose([7, 1, 40, 41, 0, 7, 1], 4, guesses=[2]) == [2, 3, 4]
    assert draft.propose([7, 1, 40, 41, 0, 7, 1], 1, guesses=[2, 3]) == [2]
    assert draft.propose([8, 6], 4, guesses=[9, 8]) == [9, 8], "unknown to the table: theirs"
    assert draft.propose([7, 1, 40, 41, 0, 7, 1], 4) == [40, 41], "no guesses: as before"


def test_options_fail_before_anything_loads():
    with pytest.raises(ValueError, match="--min-share"):
        DraftOptions(min_share=1.5)
    with pytest.raises(ValueError, match="--head-size"):
        DraftOptions(head_size=0)


def test_save_load_and_the_manifest_record(tmp_path):
    (tmp_path / "tuneloop_artifact.json").write_text(json.dumps({"files": {}}))
    draft = NgramDraft.build([([5, 1, 2, 3], 1)] * 3, source={"data": "train.jsonl"})
    add_draft(tmp_path, draft)
    loaded = NgramDraft.load(tmp_path)
    assert loaded.table == draft.table and loaded.order == draft.order
    manifest = json.loads((tmp_path / "tuneloop_artifact.json").read_text())
    assert DRAFT_FILE in manifest["files"] and manifest["draft"]["data"] == "train.jsonl"
    assert NgramDraft.load(tmp_path / "elsewhere") is None


def test_a_damaged_table_names_the_file_and_the_fix(tmp_path):
    (tmp_path / DRAFT_FILE).write_text('{"version": 1, "order": 3}')
    with pytest.raises(ModelLoadError, match=f"{DRAFT_FILE}.*optimize draft"):
        NgramDraft.load(tmp_path)


def test_a_table_from_chat_data(smollm2_tokenizer, tmp_path):
    tokenizer = smollm2_tokenizer
    data = tmp_path / "train.jsonl"
    answer = '{"category": "billing", "reply": "Sorry about the double charge."}'
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"charged twice #{i}"},
                {"role": "assistant", "content": answer},
            ]
        }
        for i in range(4)
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    draft = draft_from_data(tokenizer, data)  # no model to answer: the data's answers
    assert draft.source["examples"] == 4 and draft.source["answers"] == "data"
    start = tokenizer.encode('{"category": "')
    assert tokenizer.decode(draft.propose(start, 3)) == 'billing",'


def test_model_answers_come_from_prompts_spread_over_the_file():
    from tuneloop.optimize.draft_answers import spread

    assert spread(3, 10) == [0, 4, 9] and spread(5, 3) == [0, 1, 2]
    assert len(spread(500, 1000)) == 500 and spread(500, 1000)[-1] == 999


def test_the_smallest_variant_that_passed_its_gate_answers(tmp_path):
    from tuneloop.optimize.draft_answers import answering_variant

    folders = []
    for name, size, gate in (
        ("fused-fp32", 40, "passed"),
        ("fused-int8", 10, "passed"),
        ("fused-int4", 5, "failed"),
    ):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"x" * size)
        (folder / "tuneloop_artifact.json").write_text(json.dumps({"gate": {"status": gate}}))
        folders.append(folder)
    assert answering_variant(folders) == tmp_path / "fused-int8"
    for folder in folders:  # no verdicts yet (a folder exported by hand): the smallest
        (folder / "tuneloop_artifact.json").unlink()
    assert answering_variant(folders) == tmp_path / "fused-int4"


def test_model_answers_are_batched_by_length_and_come_back_in_prompt_order():
    from types import SimpleNamespace

    from tuneloop.optimize import draft_answers

    batches = []

    class EchoModel:
        def generate(self, prompts, budget):
            batches.append([len(p) for p in prompts])
            return SimpleNamespace(tokens=[[len(p), budget, 2] for p in prompts])

    prompts = [[7] * n for n in (5, 1, 9, 3, 12, 2, 8, 4, 6, 11)]
    sequences = draft_answers.model_answers(EchoModel(), prompts, longest_answer=20)
    assert sequences == [(p + [len(p), 30, 2], len(p)) for p in prompts]
    assert [len(b) for b in batches] == [draft_answers.BATCH, len(prompts) - draft_answers.BATCH]
    assert batches[0] == sorted(batches[0]) and max(batches[0]) <= min(batches[1])
