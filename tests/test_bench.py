"""`tuneloop bench`: same token ids for every engine, quality judged alike, ratios, reports."""

from __future__ import annotations

import json

import pytest

from tuneloop.errors import UsageError


@pytest.fixture(scope="module")
def texts(smollm2_tokenizer):
    from tuneloop.bench.texts import bench_texts

    return bench_texts(smollm2_tokenizer, prompts=2, scored=2)


def test_texts_are_chat_prompts_and_their_answers(texts, smollm2_tokenizer):
    assert len(texts.prompts) == 2 and len(texts.scored) == 2
    for prompt, scored, start in zip(texts.prompts, texts.scored, texts.answer_starts, strict=True):
        assert scored[:start] == prompt, "the scored text starts with the very prompt"
        assert len(scored) > start
    assert smollm2_tokenizer.decode(texts.prompts[0]).rstrip().endswith("assistant")
    chats = [str(chat) for chat in texts.messages]
    assert len(chats) == len(set(chats)) > 200, "HTTP users get every held-out chat, no repeat"
    first = smollm2_tokenizer.apply_chat_template(texts.messages[0], add_generation_prompt=True)
    assert list(first) == texts.prompts[0]
    assert len(texts.chat_prompts) == len(texts.messages) and texts.chat_prompts[0] == first
    last = smollm2_tokenizer.apply_chat_template(texts.messages[-1], add_generation_prompt=True)
    assert texts.chat_prompts[-1] == list(last)


def test_the_in_process_user_replays_the_chats_the_http_user_sent(texts):
    """The server-overhead ratio compares like with like: the in-process side answers the
    same chats in the same order (answer lengths and drafts depend on the text)."""
    from tuneloop.bench.texts import BenchTexts
    from tuneloop.bench.worker import sequential

    class Recorder:
        seen: list = []

        def answer(self, prompt, max_tokens):
            self.seen.append(prompt)
            return max_tokens

    engine = Recorder()
    replayed = BenchTexts.from_json(texts.to_json())
    result = sequential(engine, replayed, {"repeats": 2, "sequential_requests": 5, "new_tokens": 3})
    assert engine.seen == texts.chat_prompts[:5] * 2
    assert result["tokens"] == 15 and result["passes"] == 2


@pytest.mark.slow
def test_engines_on_the_same_weights_agree_and_pass(tiny_model_dir, texts, tmp_path):
    """transformers' generate and tuneloop's loop over the same weights: same quality, and
    a row for llama.cpp that says how to install it instead of failing."""
    from tuneloop.bench.inproc import Engine, InprocOptions, missing_llama_rows, run_inproc
    from tuneloop.bench.report import write_report

    engines = [
        Engine("transformers", "transformers", tiny_model_dir, "fp32", reference=True),
        Engine("tuneloop merged", "tuneloop", tiny_model_dir, "fp32"),
    ]
    options = InprocOptions(threads=1, new_tokens=4, batch_sizes=(1, 2), repeats=1)
    section = run_inproc(engines, texts, options)
    section["rows"] += missing_llama_rows("not installed: `bash bench/build_llama_cpp.sh`")
    reference, ours, llama = section["rows"]
    assert ours["quality"]["ppl_change"] == pytest.approx(0, abs=1e-4)
    assert ours["quality"]["top1_agreement"] == 1.0 and ours["quality"]["passes"]
    for row in (reference, ours):
        assert set(row["batches"]) == {"1", "2"} and row["peak_rss_mb"] > 0
        assert row["batches"]["2"]["prompt_tokens"] == sum(len(p) for p in texts.prompts)
        assert row["batches"]["1"]["decode_tok_s"] > 0 and row["batches"]["1"]["ttft_s"] > 0
    assert "top1" not in ours["perplexity"], "per-position tokens stay out of the report"
    result = {
        "setup": {"machine": "test", "threads": 1, "new_tokens": 4, "load_before": 0.0},
        "inproc": section,
    }
    paths = write_report(result, tmp_path)
    assert {p.name for p in paths} == {"bench.json", "bench.md", "bench.png"}
    text = (tmp_path / "bench.md").read_text()
    assert "bash bench/build_llama_cpp.sh" in text and "| tuneloop merged | fp32 |" in text
    assert json.loads((tmp_path / "bench.json").read_text())["inproc"]["rows"][2] == llama


@pytest.mark.slow
def test_the_server_overhead_reference_runs_the_servers_own_engine(tiny_model_dir, texts):
    """At 1 user the HTTP figures are compared with the same requests through the server's
    scheduler and runner in process (not another decode loop), counted as usage counts."""
    from tuneloop.bench.inproc import Engine, InprocOptions, run_worker

    engine = Engine("tuneloop in process", "tuneloop-served", tiny_model_dir, "")
    options = InprocOptions(threads=1, new_tokens=5, batch_sizes=(), repeats=2)
    options.sequential_requests = 3
    result = run_worker(engine, texts, options)
    assert result["sequential"]["requests"] == 3 and result["sequential"]["passes"] == 2
    assert 3 <= result["sequential"]["tokens"] <= 15 and result["sequential"]["tokens_per_s"] > 0


def _row(label, engine, b1, passes):
    return {
        "label": label,
        "engine": engine,
        "batches": {"1": {"decode_tok_s": b1}, "8": {"decode_tok_s": 4 * b1}},
        "quality": {"passes": passes},
    }


def test_ratios_compare_the_fastest_passing_rows_only():
    from tuneloop.bench.inproc import ratios

    rows = [
        _row("transformers", "transformers", 10.0, True),
        _row("tuneloop int8", "tuneloop", 150.0, True),
        _row("tuneloop int4", "tuneloop", 400.0, False),
        _row("llama.cpp Q8_0", "llama.cpp", 100.0, True),
        _row("llama.cpp Q4_0", "llama.cpp", 300.0, False),
    ]
    out = ratios(rows)
    assert out["decode_b1_vs_llama.cpp"] == {
        "tuneloop": "tuneloop int8",
        "peer": "llama.cpp Q8_0",
        "ratio": 1.5,
    }
    assert out["decode_b8_vs_transformers"]["ratio"] == 15.0


def test_speculative_decoding_gets_its_own_ratio_and_never_the_plain_one():
    from tuneloop.bench.inproc import ratios
    from tuneloop.bench.report import _ratio_lines

    rows = [
        _row("tuneloop int8", "tuneloop", 150.0, True),
        _row("tuneloop int8 + drafts", "tuneloop-drafted", 200.0, True),
        _row("llama.cpp Q8_0", "llama.cpp", 100.0, True),
    ]
    out = ratios(rows)
    assert out["decode_b1_vs_llama.cpp"]["ratio"] == 1.5
    assert out["drafted_decode_b1_vs_llama.cpp"]["ratio"] == 2.0
    assert not [key for key in out if key.startswith("drafted_decode_b8")]
    lines = "\n".join(_ratio_lines(out))
    assert "drafted decode b1 vs llama.cpp: **2.00x**" in lines and lines.count("target") == 2


def test_missing_llama_cpp_is_reported_with_the_install_command(monkeypatch):
    import importlib.util

    from tuneloop.bench import llama_peer

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "llama_cpp" else real(name)
    )
    assert llama_peer.BUILD_COMMAND in llama_peer.bindings_problem()


def test_unknown_section_is_refused():
    from tuneloop.bench.cli import bench

    with pytest.raises(UsageError, match="--only gpu"):
        bench(only=["gpu"])


def test_http_notes_become_throughput_and_percentiles():
    from tuneloop.bench.http import summarize

    notes = [
        {"start": 0.0, "first": 0.5, "end": 2.0, "tokens": 20, "ok": True},
        {"start": 1.0, "first": 1.1, "end": 4.0, "tokens": 40, "ok": True, "reconnects": 1},
        {"start": 3.0, "first": None, "end": 3.1, "tokens": 0, "ok": False},
    ]
    out = summarize(notes)
    assert out["requests"] == 2 and out["errors"] == 1 and out["tokens"] == 60
    assert out["reconnects"] == 1
    assert out["tokens_per_s"] == pytest.approx(60 / 4.0)
    assert out["ttft_p50_s"] == pytest.approx(0.3) and out["e2e_p99_s"] <= 3.0
    assert summarize(notes[2:]) == {
        "requests": 0, "errors": 1, "reconnects": 0, "tokens_per_s": 0.0
    }  # fmt: skip


def test_the_overhead_reference_runs_right_after_the_run_it_is_compared_with(monkeypatch):
    """The in-process reference of target 3 runs while the server idles after its 1-user
    run, before its other user counts (this machine drifts over minutes)."""
    import contextlib
    import os
    from types import SimpleNamespace

    from tuneloop.bench import http

    events = []

    @contextlib.contextmanager
    def serving(server):
        events.append(f"start {server['label']}")
        yield "http://server", SimpleNamespace(pid=os.getpid())

    def locust(url, model, messages, users, options):
        events.append(f"{users} users")
        return [{"start": 0.0, "first": 0.1, "end": 1.0, "tokens": 10, "ok": True}]

    monkeypatch.setattr(http, "_serving", serving)
    monkeypatch.setattr(http, "_locust", locust)
    servers = [{"label": "ours", "model": "m"}, {"label": "peer", "model": "m"}]

    def after(server, row, again):
        events.append(f"after {server['label']} {row['users']}")
        if server["label"] == "ours" and row["users"] == 1:
            assert again()["users"] == 1  # one more run at the same user count, not a row

    out = http.run_http(servers, [], [1, 4], None, after)
    assert events == [
        "start ours", "1 users", "after ours 1", "1 users", "4 users", "after ours 4",
        "start peer", "1 users", "after peer 1", "4 users", "after peer 4",
    ]  # fmt: skip
    assert [row["users"] for row in out["rows"]] == [1, 4, 1, 4]


def test_the_overhead_is_the_median_of_pairs_whose_order_alternates():
    from tuneloop.bench.overhead import paired_overhead

    events, http_speeds, in_process_speeds = [], iter([90.0, 120.0]), iter([100.0, 100.0, 0])

    def http_run():
        events.append("http")
        return {"requests": 7, "tokens_per_s": next(http_speeds)}

    def in_process(requests):
        events.append(f"in process {requests}")
        speed = next(in_process_speeds)
        return {"tokens_per_s": speed} if speed else None  # the third could not run

    first = {"requests": 5, "tokens_per_s": 99.0}
    result = paired_overhead(first, http_run, in_process, pairs=3)
    # the first pair's HTTP side is the run already made; the second runs in process first,
    # as many chats as the HTTP run before it sent
    assert events == ["in process 5", "in process 5", "http", "http", "in process 7"]
    assert [pair["order"] for pair in result["overhead_pairs"]] == [
        "HTTP first",
        "in process first",
    ]
    assert [pair["ratio"] for pair in result["overhead_pairs"]] == [0.99, 0.9]
    assert result["overhead_ratio"] == 0.9  # of two, the lower: the cautious reading
    assert result["in_process_1_user"] == {"tokens_per_s": 100.0}
    nothing_ran = paired_overhead(first, lambda: first, lambda requests: None)
    assert nothing_ran == {}


def test_http_report_states_each_target_and_whether_it_is_met():
    from tuneloop.bench.report import markdown

    def row(label, users, tps, ttft99):
        timings = {"ttft_p50_s": 0.1, "ttft_p99_s": ttft99, "e2e_p50_s": 1, "e2e_p99_s": 2}
        return {"label": label, "users": users, "tokens_per_s": tps, "requests": 9,
                "errors": 0, **timings}  # fmt: skip

    http = {
        "rows": [
            row("tuneloop serve (fused-int8)", 16, 300.0, 0.5),
            row("llama-server -np 8 (q8_0)", 16, 150.0, 0.4),
        ],
        "overhead_ratio": 0.97,
        "overhead_pairs": [{"ratio": r} for r in (0.97, 0.92, 1.01)],
        "in_process_1_user": {"tokens_per_s": 100.0},
    }
    setup = {"machine": "test", "threads": 2, "new_tokens": 8, "load_before": 0.0}
    text = markdown({"setup": setup, "http": http})
    assert "**2.00x** tokens/s, p99 TTFT 500 vs 400 ms" in text and "NOT met" in text
    expected = "**97%** of the same chats, in the same order, through the server's engine"
    assert expected in text and "the median of 3 pairs" in text and "97%, 92%, 101%" in text
    assert "95%: met" in text


def test_a_peer_that_could_not_be_prepared_is_named_in_the_report():
    from tuneloop.bench.report import markdown

    inproc = {
        "rows": [_row("transformers", "transformers", 10.0, True)],
        "notes": ["convert_hf_to_gguf q8_0 failed: No module named 'sentencepiece'"],
    }
    setup = {"machine": "test", "threads": 2, "new_tokens": 8, "load_before": 0.0}
    inproc["rows"][0].update(precision="fp32", peak_rss_mb=1.0)
    text = markdown({"setup": setup, "inproc": inproc})
    assert "Peers not measured" in text and "No module named 'sentencepiece'" in text


def test_http_report_states_the_servers_memory_against_fp32_transformers():
    import os

    from tuneloop.bench.report import markdown
    from tuneloop.optimize.profiling import peak_rss_mb

    assert peak_rss_mb(os.getpid()) > 10 and peak_rss_mb() > 10
    http = {
        "rows": [],
        "server_peak_rss_mb": {"tuneloop serve (fused-int8)": 900.0, "llama-server -np 8": 600.0},
        "reference_rss_mb": 1370.0,
    }
    setup = {"machine": "test", "threads": 2, "new_tokens": 8, "load_before": 0.0}
    text = markdown({"setup": setup, "http": http})
    assert "tuneloop serve **900 MB** vs the transformers fp32 process 1370 MB" in text
    assert "(target: no more: met); llama-server -np 8 600 MB" in text


def test_batch_one_adds_up_every_prompt_run_in_turn():
    from tuneloop.bench.engines import Timing

    plain = Timing.total([Timing(10, 0.1, 20, 1.0), Timing(30, 0.3, 40, 1.0)])
    assert plain.to_json()["ttft_s"] == pytest.approx(0.2)  # the mean, not the sum
    assert plain.to_json()["decode_tok_s"] == 30.0 and "tokens_per_pass" not in plain.to_json()
    drafted = Timing.total([Timing(10, 0.1, 20, 1.0, passes=10), Timing(30, 0.3, 40, 1.0, 30)])
    assert drafted.to_json()["tokens_per_pass"] == 1.5
