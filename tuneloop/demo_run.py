"""`tuneloop demo`: the main job end to end on the shipped support-triage data set.

1) base model  2) data prepare  3) train `support-triage`  4) eval  5) optimize all
6) serve it with metrics (and Prometheus scraping it where installed).
Each stage calls the same function as its CLI command. A stage this version does not have yet
is reported as "not built yet", and the stages that need its output are skipped, so the demo
always says plainly how far the pipeline goes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tuneloop.base_model import DEFAULT_BASE, load_model, load_tokenizer, resolve_base
from tuneloop.demo import DEMO_DATA
from tuneloop.errors import NotBuiltYetError
from tuneloop.progress import duration

log = logging.getLogger(__name__)

ADAPTER_NAME = "support-triage"
EVAL_TICKETS = 32
"""Test tickets the demo's eval scores (the first N of 124), to reach the served endpoint
within 15 minutes on 2 cores; `tuneloop eval` itself scores every one."""
OPTIMIZE_SAMPLES = 64
"""Examples `optimize all` scores per variant (its default): with fewer, one ticket answered
differently moves task accuracy by more than the gate's 2 points."""
DEMO_EVAL_EVERY = 64
"""Optimizer steps between validations in the demo's training (158 steps in all)."""
DRAFT_ANSWERS = 80
"""Training prompts the optimized model answers for its drafts in the demo (`optimize all`
answers 500: about 1.5 minutes more on 2 cores, a few more drafted tokens kept per pass)."""
EXPECTED_SECONDS = {
    "base model": 30,
    "data prepare": 5,
    "train": 460,
    "eval": 50,
    "optimize": 270,
    "serve": 5,
}
"""Each stage's time in a full run on an idle 2-core machine (the README's quick start)."""
SANITY_PROMPT = "In one sentence: what is a support ticket?"
SHIPPED_RULES = Path(__file__).resolve().parents[1] / "grafana" / "rules"
"""The alert rules of a source checkout (an installed wheel has none: Prometheus runs without)."""


@dataclass
class DemoRun:
    out: Path
    base: str
    serve: bool
    quick: bool = False
    results: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.out / "data"

    @property
    def adapter_dir(self) -> Path:
        return self.out / "adapters" / ADAPTER_NAME

    @property
    def optimized_dir(self) -> Path:
        return self.out / "optimized" / ADAPTER_NAME


def demo(
    *,
    out: Path = Path("tuneloop-demo"),
    base: str = DEFAULT_BASE,
    serve: bool = True,
    quick: bool = False,
) -> int:
    """Run the whole pipeline on the demo data set: prepare, train, eval, optimize, serve.

    The adapter is trained as `support-triage`. Stages that this version does not include yet
    are listed as such; stages that depend on them are skipped.

    Args:
        out: working folder for data splits, the adapter and optimized artifacts.
        base: base model (the embedded default needs no network).
        serve: start the server at the end (stop it with Ctrl-C).
        quick: a smoke run: train a few steps and evaluate a few examples only.
    """
    run = DemoRun(out=out, base=base, serve=serve, quick=quick)
    out.mkdir(parents=True, exist_ok=True)
    print(_expected_time(run), flush=True)
    for name, stage, needs in STAGES:
        if name == "serve" and not serve:
            run.results[name] = "skipped (--no-serve)"
            continue
        blocked = [n for n in needs if not run.results.get(n, "").startswith("done")]
        if blocked:
            run.results[name] = f"skipped (needs {', '.join(blocked)})"
            continue
        run.results[name] = _run_stage(name, stage, run)
    _print_summary(run)
    return 0


def _expected_time(run: DemoRun) -> str:
    if run.quick:
        return "tuneloop demo --quick: a smoke run (a few training steps, 8 test tickets)."
    stages = [name for name, _, _ in STAGES if run.serve or name != "serve"]
    total = sum(EXPECTED_SECONDS[name] for name in stages)
    parts = ", ".join(f"{name} ~{duration(EXPECTED_SECONDS[name])}" for name in stages)
    goal = "to the served endpoint" if run.serve else "in all"
    return (
        f"tuneloop demo: about {duration(total)} {goal} on an idle 2-core machine "
        f"({parts}); longer while other work runs. Every stage shows its progress."
    )


def _run_stage(name: str, stage: Callable[[DemoRun], str], run: DemoRun) -> str:
    print(f"\n== {name} ==", flush=True)
    started = time.perf_counter()
    try:
        detail = stage(run)
    except NotBuiltYetError:
        print(f"{name}: not built yet in this version")
        return "not built yet"
    finally:
        run.seconds[name] = time.perf_counter() - started
    return f"done in {duration(run.seconds[name])}: {detail}"


def stage_base_model(run: DemoRun) -> str:
    """Resolve (convert once) the base model and check that it answers a chat prompt."""
    import torch

    resolved = resolve_base(run.base)
    tokenizer, model = load_tokenizer(resolved), load_model(resolved)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": SANITY_PROMPT}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=48, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    print(f"Q: {SANITY_PROMPT}\nA: {answer.strip()}")
    return f"{resolved.spec} at {resolved.path}"


def stage_prepare(run: DemoRun) -> str:
    from tuneloop.train.cli import data_prepare
    from tuneloop.train.prepare import PrepareOptions

    data_prepare(
        DEMO_DATA, out=run.data_dir, base=run.base, options=PrepareOptions(label_field="category")
    )
    return str(run.data_dir)


def stage_train(run: DemoRun) -> str:
    from tuneloop.train.cli import train
    from tuneloop.train.options import TrainOptions

    if run.quick:  # a smoke run: a few steps
        options = TrainOptions(max_steps=4, eval_every=2, profile_examples=16)
    else:  # the defaults, but validation about 3 times instead of 5 (~12 s each on 2 cores)
        options = TrainOptions(eval_every=DEMO_EVAL_EVERY)
        print(
            f"Training with the default recipe, validating every {DEMO_EVAL_EVERY} steps "
            "(`tuneloop train` validates about 5 times per run)."
        )
    train(
        data=run.data_dir / "train.jsonl",
        val=run.data_dir / "val.jsonl",
        out=run.adapter_dir,
        base=run.base,
        options=options,
    )
    return str(run.adapter_dir)


def stage_eval(run: DemoRun) -> str:
    import json

    from tuneloop.train.cli import evaluate

    test = run.data_dir / "test.jsonl"
    limit = 8 if run.quick else EVAL_TICKETS
    print(
        f"Scoring the first {limit} test tickets to keep the demo short; "
        f"`tuneloop eval --adapter {run.adapter_dir} --data {test}` scores all of them."
    )
    evaluate(adapter=run.adapter_dir, data=test, base=run.base, limit=limit)
    results = json.loads((run.adapter_dir / "eval" / "eval.json").read_text())["results"]
    base, adapter = results["base"], results["adapter"]
    return (
        f"category accuracy {base['accuracy']:.0%} -> {adapter['accuracy']:.0%}, valid JSON "
        f"{base['valid_json']:.0%} -> {adapter['valid_json']:.0%} (base -> adapter)"
    )


def stage_optimize(run: DemoRun) -> str:
    from tuneloop.optimize.cli import all_variants

    fused = importlib.util.find_spec("onnxruntime_genai") is not None
    print(
        f"To keep the demo short it makes the {'fused ' if fused else ''}8-bit variant and its "
        f"fp32 export only and drafts from {DRAFT_ANSWERS} answers; `tuneloop optimize all` "
        "also makes int4 and optimum's graph, and drafts from 500 answers."
    )
    all_variants(
        adapter=run.adapter_dir,
        out=run.optimized_dir,
        base=run.base,
        data=run.data_dir / "val.jsonl",
        task_data=run.data_dir / "test.jsonl",
        methods=["int8"],
        optimum=not fused,
        samples=8 if run.quick else OPTIMIZE_SAMPLES,
        draft_answers=8 if run.quick else DRAFT_ANSWERS,
        force=True,
    )
    return str(run.optimized_dir)


def stage_serve(run: DemoRun) -> str:
    from tuneloop.serve.cli import serve, usage_banner
    from tuneloop.serve.settings import Settings

    settings = Settings(
        base=run.base, adapter=[f"{ADAPTER_NAME}={run.adapter_dir}"], log_format="text"
    )
    with _prometheus_beside(settings, run.out / "prometheus"):
        print(usage_banner(settings, ADAPTER_NAME), flush=True)
        serve(settings=settings)
    return "server stopped"


@contextlib.contextmanager
def _prometheus_beside(settings, workdir: Path):
    """A real Prometheus scraping the demo server with the shipped alert rules, if installed."""
    from tuneloop.errors import MissingDependencyError
    from tuneloop.ports import free_port, port_is_free
    from tuneloop.serve.prometheus import LocalPrometheus

    rules = sorted(SHIPPED_RULES.glob("*.yaml")) if SHIPPED_RULES.is_dir() else []
    port = 9090 if port_is_free(9090) else free_port()
    prometheus = LocalPrometheus(
        targets=[f"127.0.0.1:{settings.port}"],
        workdir=workdir,
        rule_files=rules,
        scrape_interval="5s",
        evaluation_interval="5s",
        port=port,
    )
    try:
        prometheus.start()
    except MissingDependencyError as exc:
        print(f"Not starting Prometheus: {exc}")
        yield None
        return
    dashboard = SHIPPED_RULES.parent / "dashboards" / "tuneloop-overview.json"
    print(
        f"Prometheus on {prometheus.url} scrapes the server every 5 s with the alert rules of "
        f"grafana/rules (alerts: {prometheus.url}/alerts). Picture the dashboard with:\n"
        f"  tuneloop monitor snapshot --prometheus {prometheus.url} --dashboard {dashboard} "
        "--out snapshots --since 15m --scrape-interval 5s"
    )
    try:
        yield prometheus
    finally:
        prometheus.stop()


# name, stage, names of the stages whose output it needs
STAGES: list[tuple[str, Callable[[DemoRun], str], tuple[str, ...]]] = [
    ("base model", stage_base_model, ()),
    ("data prepare", stage_prepare, ()),
    ("train", stage_train, ("data prepare",)),
    ("eval", stage_eval, ("train",)),
    ("optimize", stage_optimize, ("train",)),
    ("serve", stage_serve, ("train",)),
]


def _print_summary(run: DemoRun) -> None:
    print("\n== demo summary ==")
    width = max(len(name) for name in run.results)
    for name, result in run.results.items():
        print(f"  {name:<{width}}  {result}")
    print(f"  {'total':<{width}}  {duration(sum(run.seconds.values()))}")
