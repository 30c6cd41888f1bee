"""`tuneloop bench`'s head-to-head check of target 1: the contenders take turns in one process."""

from __future__ import annotations

import pytest


def _row(label, engine, b1, passes=True, ppl_ok=True):
    return {
        "label": label,
        "engine": engine,
        "model": f"/models/{label}",
        "precision": "int8",
        "batches": {"1": {"decode_tok_s": b1}},
        "quality": {"passes": passes, "ppl_ok": ppl_ok},
    }


def test_the_contenders_are_the_fastest_that_qualify():
    """Ours: the fastest variant passing the gate, plain and with drafts; the peer: llama.cpp's
    fastest within +2% perplexity (a faster 4-bit that loses quality does not count)."""
    from tuneloop.bench.head_to_head import contenders

    rows = [
        _row("transformers", "transformers", 20.0),
        _row("tuneloop fused-int8", "tuneloop", 150.0),
        _row("tuneloop fused-int4", "tuneloop", 200.0, passes=False, ppl_ok=False),
        _row("tuneloop fused-int8 + drafts", "tuneloop-drafted", 190.0),
        _row("llama.cpp Q8_0", "llama.cpp", 130.0),
        _row("llama.cpp Q4_0", "llama.cpp", 180.0, passes=False, ppl_ok=False),
    ]
    found = contenders(rows)
    assert [e.label for e in found.ours] == ["tuneloop fused-int8", "tuneloop fused-int8 + drafts"]
    assert found.peer.label == "llama.cpp Q8_0"
    assert str(found.peer.model) == "/models/llama.cpp Q8_0"
    assert contenders([r for r in rows if r["engine"] != "llama.cpp"]) is None
    skipped = [r for r in rows if r["engine"] != "llama.cpp"] + [{"label": "llama.cpp",
               "engine": "llama.cpp", "precision": "-", "skipped": "not installed"}]  # fmt: skip
    assert contenders(skipped) is None


def test_ratios_are_taken_per_round_then_their_median():
    """A round where the whole machine is slower moves both engines: the ratio of each round
    stays put, while a ratio of separately chosen medians would not."""
    from tuneloop.bench.head_to_head import summarize

    rounds = [
        {"ours": 150.0, "peer": 100.0},
        {"ours": 120.0, "peer": 80.0},  # the machine slowed down for this round
        {"ours": 160.0, "peer": 100.0},
        {"ours": 90.0, "peer": 75.0},
        {"ours": 140.0, "peer": 100.0},
    ]
    out = summarize(rounds, ["ours"], "peer")
    assert out["ratios"]["ours"] == {"peer": "peer", "median": 1.5, "low": 1.2, "high": 1.6}
    assert out["median_tok_s"] == {"ours": 140.0, "peer": 100.0}, "the medians' ratio: 1.4"
    assert out["rounds"] == rounds


def test_the_report_judges_target_1_head_to_head(tmp_path):
    from tuneloop.bench.head_to_head import summarize
    from tuneloop.bench.inproc import ratios
    from tuneloop.bench.report import markdown, write_report

    rows = [
        _row("tuneloop fused-int8", "tuneloop", 150.0),
        _row("tuneloop fused-int8 + drafts", "tuneloop-drafted", 210.0),
        _row("llama.cpp Q8_0", "llama.cpp", 130.0),
    ]
    for row in rows:
        row.update(peak_rss_mb=900.0, batches={"1": row["batches"]["1"], "8": {}})
        row["quality"].update(ppl=4.0, ppl_change=0.0, top1_agreement=0.98)
    rounds = [{"tuneloop fused-int8": 140.0, "tuneloop fused-int8 + drafts": 196.0,
               "llama.cpp Q8_0": 140.0}] * 3  # fmt: skip
    names = ["tuneloop fused-int8", "tuneloop fused-int8 + drafts"]
    inproc = {
        "rows": rows,
        "ratios": ratios(rows),
        "head_to_head": summarize(rounds, names, "llama.cpp Q8_0"),
    }
    setup = {"machine": "test", "threads": 2, "new_tokens": 8, "load_before": 0.0}
    text = markdown({"setup": setup, "inproc": inproc})
    assert "tuneloop fused-int8 + drafts vs llama.cpp Q8_0: **1.40x**" in text
    assert "(target 1.5x: NOT met)" in text and "(target 1.5x: met)" not in text
    assert "drafted decode b1 vs llama.cpp: **1.62x**" in text
    assert "target 1 is judged head to head" in text
    assert "| llama.cpp Q8_0 | 140.0 | 140.0 / 140.0 / 140.0 |" in text
    paths = write_report({"setup": setup, "inproc": inproc}, tmp_path)
    assert (tmp_path / "bench.png") in paths and (tmp_path / "bench.png").stat().st_size > 0
    answer_rounds = [{"tuneloop fused-int8": 140.0, "tuneloop fused-int8 + drafts": 280.0,
                      "llama.cpp Q8_0": 140.0}] * 3  # fmt: skip
    answers = summarize(answer_rounds, names, "llama.cpp Q8_0") | {"prompts": 24}
    inproc["head_to_head"]["answers"] = answers
    text = markdown({"setup": setup, "inproc": inproc})
    assert "Answers: 24 held-out prompts" in text
    assert "tuneloop fused-int8 + drafts vs llama.cpp Q8_0: **2.00x**" in text
    inproc["head_to_head"] = {"skipped": "timed out after 600 s"}
    text = markdown({"setup": setup, "inproc": inproc})
    assert "- not run: timed out after 600 s" in text and "(target 1.5x: met)" in text


def test_turns_go_prompt_by_prompt_and_the_order_rotates():
    from tuneloop.bench.engines import Timing
    from tuneloop.bench.head_to_head import rounds_of_turns

    calls = []

    class Engine:
        def __init__(self, name, seconds):
            self.name, self.seconds = name, seconds

        def generate(self, prompts, new_tokens, stop_at_end=False):
            calls.append((self.name, prompts[0][0], stop_at_end))
            made = new_tokens // 2 if stop_at_end else new_tokens - 1  # answers end early
            return Timing(len(prompts[0]), 0.01, made, self.seconds)

    engines = {"a": Engine("a", 0.1), "b": Engine("b", 0.2), "c": Engine("c", 0.4)}
    out = rounds_of_turns(engines, [[1], [2], [3]], rounds=2, new_tokens=11)
    round_one = [("a", 1), ("b", 1), ("c", 1), ("b", 2), ("c", 2), ("a", 2), ("c", 3)]
    assert [c[:2] for c in calls[:7]] == round_one and len(calls) == 18
    for speeds in out:  # 30 tokens in 0.3 s, 0.6 s, 1.2 s
        assert speeds == pytest.approx({"a": 100.0, "b": 50.0, "c": 25.0})
    calls.clear()
    out = rounds_of_turns(engines, [[1], [2]], rounds=1, new_tokens=11, stop_at_end=True)
    assert all(c[2] for c in calls), "every engine is asked to stop at its end token"
    assert out[0] == pytest.approx({"a": 50.0, "b": 25.0, "c": 12.5})


@pytest.mark.slow
def test_the_engines_take_turns_in_one_worker(tiny_model_dir, smollm2_tokenizer):
    """Real engines in a real worker process: every contender decodes every round."""
    from tuneloop.bench.head_to_head import Contenders, run
    from tuneloop.bench.inproc import Engine, InprocOptions
    from tuneloop.bench.texts import bench_texts

    texts = bench_texts(smollm2_tokenizer, prompts=2, scored=1)
    ours = Engine("tuneloop", "tuneloop", tiny_model_dir, "fp32")
    peer = Engine("transformers", "transformers", tiny_model_dir, "fp32")
    options = InprocOptions(threads=1, new_tokens=4, repeats=1)
    out = run(Contenders([ours], peer), texts, options, rounds=3)
    assert len(out["rounds"]) == 3
    for speeds in out["rounds"]:
        assert set(speeds) == {"tuneloop", "transformers"} and min(speeds.values()) > 0
    assert out["ratios"]["tuneloop"]["low"] <= out["ratios"]["tuneloop"]["median"]
    answered = min(len(texts.chat_prompts), 24)  # held-out prompts, beyond the 128-token ones
    assert len(out["answers"]["rounds"]) == 3 and out["answers"]["prompts"] == answered
    assert min(out["answers"]["median_tok_s"].values()) > 0
