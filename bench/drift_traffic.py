"""Drift scores a trained adapter gets from in-distribution and then out-of-distribution traffic.

Serves, through the real scheduler with the server's default drift settings, a window of
held-out demo support tickets, then prompts of other kinds (code, verse, other languages;
`tuneloop.bench.ood_prompts`), and prints the PSI per feature after the in-distribution window
and after every `--step` out-of-distribution requests. Run it on the adapter `tuneloop train`
wrote for the demo data:

    python -m tuneloop.bench.drift_traffic --adapter out/support-triage --data test.jsonl

(`--data`: held-out tickets, e.g. the test split of `tuneloop data prepare`.)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="held-out in-distribution file")
    parser.add_argument("--base", default=None)
    parser.add_argument("--ood", type=int, default=60, help="out-of-distribution requests")
    parser.add_argument("--step", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    result = run(args)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def run(args) -> dict:
    import torch
    from prometheus_client import CollectorRegistry

    from tuneloop.base_model import DEFAULT_BASE, resolve_base
    from tuneloop.bench.ood_prompts import ood_prompts
    from tuneloop.data_formats import prompt_and_completion, read_examples
    from tuneloop.serve.backends.torch_backend import TorchBackend
    from tuneloop.serve.batch_runner import BatchRunner
    from tuneloop.serve.drift_monitor import DriftMonitor
    from tuneloop.serve.lanes import Lane, ModelSpec
    from tuneloop.serve.metrics import Metrics
    from tuneloop.serve.scheduler import Scheduler, SchedulerLimits
    from tuneloop.serve.settings import Settings

    torch.set_num_threads(1)
    settings = Settings()
    resolved = resolve_base(args.base or DEFAULT_BASE)
    spec = ModelSpec("base", "torch", resolved.path, adapters={"triage": args.adapter})
    backend = TorchBackend.load(spec)
    runner = BatchRunner(backend, pool_prompts=True)
    lane = Lane(
        "base",
        backend,
        Scheduler("base", runner, SchedulerLimits(max_batch_size=16, max_waiting=10_000)),
    )
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.add_model("base", "triage", {})
    monitor = DriftMonitor(metrics, settings)
    monitor.attach([lane])
    tickets = [prompt_and_completion(e)[0] for e in read_examples(args.data)]
    tickets = tickets[: settings.drift_window]
    result = {"window": settings.drift_window, "min_requests": settings.drift_min_requests}
    started = time.perf_counter()
    _serve(lane, monitor, tickets, args.max_tokens)
    result["in_distribution"] = _psi(registry, monitor, len(tickets))
    print("in distribution:", json.dumps(result["in_distribution"]))
    steps, ood = [], [[{"role": "user", "content": p}] for p in ood_prompts(args.ood)]
    for start in range(0, len(ood), args.step):
        _serve(lane, monitor, ood[start : start + args.step], args.max_tokens)
        steps.append(_psi(registry, monitor, start + args.step))
        print(f"after {start + args.step} out-of-distribution:", json.dumps(steps[-1]))
    result["out_of_distribution"] = steps
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _serve(lane, monitor, conversations, max_tokens) -> None:
    from tuneloop.serve.jobs import new_job
    from tuneloop.serve.requests import GenerationRequest, RequestFinished, SamplingParams

    def sink(event):
        if isinstance(event, RequestFinished):
            monitor.on_request_finished(event.record)

    tokenizer = lane.tokenizer
    for i, messages in enumerate(conversations):
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if isinstance(ids, dict) else ids
        request = GenerationRequest(
            f"r{i}", "triage", tuple(ids), SamplingParams(max_tokens, temperature=0), "triage"
        )
        lane.scheduler.add(new_job(request, tokenizer, sink, lane="base", now=0))
    while lane.scheduler.has_work():
        lane.scheduler.step()


def _psi(registry, monitor, requests: int) -> dict:
    monitor.refresh()
    scores = {"requests": requests}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == "tuneloop_drift_score" and sample.labels["method"] in (
                "psi",
                "cosine",
            ):
                scores[f"{sample.labels['feature']}_{sample.labels['method']}"] = round(
                    sample.value, 3
                )
    return scores


if __name__ == "__main__":
    main()
