"""Task metrics of `tuneloop eval`: JSON parsing, accuracy, macro-F1, confusion, group gaps."""

from __future__ import annotations

import json

import pytest

from tuneloop.train.labels import parse_answer
from tuneloop.train.metrics import INVALID, OTHER, label_metrics, macro_f1

LABELS = ["billing", "shipping"]
KEYS = ("category", "reply")


def answer(label: str, **extra) -> str:
    return json.dumps({"category": label, "reply": "ok", **extra})


def test_parse_answer_tells_json_shape_and_label():
    assert parse_answer(answer("billing"), "category").has_shape(KEYS)
    assert not parse_answer(answer("billing", extra=1), "category").has_shape(KEYS)
    broken = parse_answer('{"category": "billing", "reply": "unfinished', "category")
    assert not broken.is_json and broken.label is None
    assert parse_answer("[1, 2]", "category").is_json is False
    assert parse_answer('{"category": 3}', "category").label is None


def test_label_metrics_on_a_known_case():
    answers = [answer("billing"), answer("shipping"), answer("billing"), "not json", answer("x")]
    references = ["billing", "shipping", "shipping", "billing", "shipping"]
    groups = ["en", "en", "de", "de", "de"]
    m = label_metrics(
        answers,
        references,
        label_field="category",
        labels=LABELS,
        expected_keys=KEYS,
        groups=groups,
    )
    assert m["accuracy"] == pytest.approx(2 / 5)
    assert m["valid_json"] == pytest.approx(4 / 5) and m["valid_shape"] == pytest.approx(4 / 5)
    # billing: tp 1, fp 1, fn 1 -> F1 0.5; shipping: tp 1, fp 0, fn 2 -> F1 0.5
    assert m["macro_f1"] == pytest.approx(0.5)
    assert m["confusion"]["billing"][INVALID] == 1 and m["confusion"]["shipping"][OTHER] == 1
    assert m["groups"]["per_group"]["en"]["accuracy"] == 1.0
    assert m["groups"]["per_group"]["de"]["accuracy"] == 0.0
    assert m["groups"]["largest_gap"] == 1.0


def test_macro_f1_is_one_only_when_everything_is_right():
    assert macro_f1(["a", "b"], ["a", "b"], ["a", "b"]) == 1.0
    assert macro_f1(["a", "a"], ["a", "b"], ["a", "b"]) < 1.0


def test_eval_command_compares_base_and_a_plain_peft_adapter(tmp_path, tiny_model, tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    from tuneloop import cli
    from tuneloop.demo import DEMO_DATA

    adapter = tmp_path / "adapter"
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(tiny_model, config).save_pretrained(adapter)
    data = tmp_path / "test.jsonl"
    data.write_text("\n".join(DEMO_DATA.read_text().splitlines()[:6]) + "\n")
    args = ["eval", "--adapter", str(adapter), "--data", str(data), "--base", str(tiny_model_dir)]
    args += ["--label-field", "category", "--group-field", "category", "--out", str(tmp_path)]
    assert cli.main(args) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    for model in ("base", "adapter"):
        result = report["results"][model]
        assert result["examples"] == 6 and result["loss"] > 0 and "confusion" in result
        assert set(result["groups"]["per_group"]) <= {
            "billing",
            "shipping",
            "returns",
            "technical",
            "account",
        }
    assert report["results"]["base"]["loss"] != report["results"]["adapter"]["loss"]
    assert "| metric | base model | adapter |" in (tmp_path / "eval.md").read_text()
