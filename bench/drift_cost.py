"""What drift monitoring costs per served request, as a share of the request's generation time.

On the embedded model (or `--base`), serves demo support tickets one at a time through the
real scheduler with drift on, then times each piece of drift work that the requests paid for:

1) the log-probability of every sampled token (one logsumexp per token);
2) pooling the prompt's last hidden states in prefill (a forward hook and a masked sum),
   measured as the extra operations themselves on the request's real hidden-state shape;
3) the per-request features and the window append (`DriftMonitor.on_request_finished`);
4) rescoring a full window (background thread, once per second at most), shared by the
   requests served in that second at the measured throughput.

Each piece is timed in the same process as the generation it is compared with, so the ratio
holds on a busy machine. Run: `python -m tuneloop.bench.drift_cost` (about a minute).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=None, help="base model (default: the embedded one)")
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    result = measure(args.base, args.requests, args.max_tokens)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return result


def measure(base: str | None, n_requests: int, max_tokens: int) -> dict:
    import torch

    from tuneloop.serve.backends.torch_backend import TorchBackend
    from tuneloop.serve.batch_runner import BatchRunner
    from tuneloop.serve.lanes import ModelSpec
    from tuneloop.serve.scheduler import Scheduler, SchedulerLimits

    torch.set_num_threads(1)
    backend = TorchBackend.load(_spec(ModelSpec, base))
    prompts = _prompts(backend.tokenizer, n_requests + 32)
    profile_dir = _profile(backend, prompts[n_requests:])
    monitor, lane = _monitor(backend, profile_dir, BatchRunner, Scheduler, SchedulerLimits)
    records, seconds = _serve(lane, prompts[:n_requests], max_tokens)
    generation_s = seconds / len(records)
    tokens = statistics.mean(len(r.output_logprobs[0]) for r in records)
    logprob_s = _logprob_cost(backend) * tokens
    pooling_s = statistics.mean(_pooling_cost(len(r.prompt_ids), backend) for r in records)
    observe_s = _per_record(monitor.on_request_finished, records)
    for _ in range(200 // len(records) + 1):  # fill the window for a full-size rescoring
        for record in records:
            monitor.on_request_finished(record)
    refresh_s = _timed(_touch_and_refresh(monitor), repeats=20)
    throughput = len(records) / seconds
    refresh_share_s = refresh_s / max(throughput, 1e-9) if throughput > 1 else refresh_s
    drift_s = logprob_s + pooling_s + observe_s + refresh_share_s
    return {
        "model": backend.info.name,
        "requests": len(records),
        "mean_prompt_tokens": statistics.mean(len(r.prompt_ids) for r in records),
        "mean_generated_tokens": tokens,
        "generation_ms_per_request": round(generation_s * 1000, 2),
        "drift_ms_per_request": {
            "token_logprobs": round(logprob_s * 1000, 4),
            "prompt_pooling": round(pooling_s * 1000, 4),
            "features_and_window": round(observe_s * 1000, 4),
            "rescoring_share": round(refresh_share_s * 1000, 4),
            "total": round(drift_s * 1000, 4),
        },
        "rescoring_full_window_ms": round(refresh_s * 1000, 3),
        "drift_percent_of_generation": round(100 * drift_s / generation_s, 3),
    }


def _spec(model_spec, base):
    from tuneloop.base_model import DEFAULT_BASE, resolve_base

    resolved = resolve_base(base or DEFAULT_BASE)
    return model_spec(name="bench", backend="torch", path=resolved.path, threads=1)


def _prompts(tokenizer, n: int) -> list[list[int]]:
    from tuneloop.demo import DEMO_DATA

    lines = DEMO_DATA.read_text(encoding="utf-8").splitlines()[-n:]
    out = []
    for line in lines:
        messages = json.loads(line)["messages"][:-1]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        out.append(list(ids["input_ids"] if isinstance(ids, dict) else ids))
    return out


def _profile(backend, prompt_ids: list[list[int]]) -> Path:
    """A reference profile of other demo tickets under the same model (what training writes)."""
    import tempfile

    from tuneloop.train.encoding import Encoded
    from tuneloop.train.profile import reference_profile

    encoded = [Encoded(list(p), [-100] * len(p), len(p)) for p in prompt_ids]
    profile = reference_profile(
        backend.model, backend.tokenizer, encoded, sample=len(encoded), seed=0, base={}
    )
    folder = Path(tempfile.mkdtemp(prefix="drift-cost-"))
    profile.save(folder / "reference_profile.json")
    return folder


def _monitor(backend, profile_dir, batch_runner, scheduler, limits):
    from prometheus_client import CollectorRegistry

    from tuneloop.serve.drift_monitor import DriftMonitor
    from tuneloop.serve.lanes import Lane
    from tuneloop.serve.metrics import Metrics
    from tuneloop.serve.settings import Settings

    backend.info = backend.info.__class__(**{**backend.info.__dict__, "path": profile_dir})
    lane = Lane(
        "bench", backend, scheduler("bench", batch_runner(backend, pool_prompts=True), limits())
    )
    metrics = Metrics(CollectorRegistry())
    metrics.add_model("bench", None, {})
    monitor = DriftMonitor(metrics, Settings())
    monitor.attach([lane])
    return monitor, lane


def _serve(lane, prompts, max_tokens):
    from tuneloop.serve.jobs import new_job
    from tuneloop.serve.requests import GenerationRequest, RequestFinished, SamplingParams

    records = []

    def sink(event):
        if isinstance(event, RequestFinished):
            records.append(event.record)

    started = time.perf_counter()
    for i, ids in enumerate(prompts):
        request = GenerationRequest(
            f"r{i}", "bench", tuple(ids), SamplingParams(max_tokens, temperature=0)
        )
        lane.scheduler.add(new_job(request, lane.tokenizer, sink, lane="bench", now=0))
        while lane.scheduler.has_work():
            lane.scheduler.step()
    return records, time.perf_counter() - started


def _logprob_cost(backend) -> float:
    """Seconds per sampled token for its log-probability (one row of real vocabulary size)."""
    import torch

    from tuneloop.serve.sampling import token_logprobs

    logits = torch.randn(1, len(backend.tokenizer))
    return _timed(lambda: token_logprobs(logits, [7]), repeats=2000)


def _pooling_cost(prompt_tokens: int, backend) -> float:
    """Seconds of the extra operations pooling adds to a prompt's prefill."""
    import torch

    from tuneloop.serve.backends.torch_backend import final_norm

    hidden = torch.randn(1, prompt_tokens, backend.model.config.hidden_size)
    mask = torch.ones(1, prompt_tokens, dtype=torch.long)
    norm = final_norm(backend.model)

    def extra():
        handle = norm.register_forward_hook(lambda module, args, out: None)
        handle.remove()
        (hidden * mask.to(hidden.dtype)[..., None]).sum(dim=1).float().cpu().numpy()

    return _timed(extra, repeats=200)


def _per_record(function, records) -> float:
    started = time.perf_counter()
    for record in records:
        function(record)
    return (time.perf_counter() - started) / len(records)


def _touch_and_refresh(monitor):
    def run():
        for window in monitor._windows.values():
            window._added += 1  # mark changed, so refresh really rescores
        monitor.refresh()

    return run


def _timed(function, repeats: int) -> float:
    function()
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


if __name__ == "__main__":
    main()
