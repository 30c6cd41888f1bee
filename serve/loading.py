"""From settings to a running engine: which models to load, loading them, warming them up.

- `--base` (or the embedded default) with every `--adapter NAME=DIR` makes one torch lane;
  an adapter that can't be served on it is refused with a logged reason and the rest go on.
- `--model-dir DIR` adds one lane per variant that passed its quality gate.
- With only `--model-dir`, no torch base model is loaded.

A model or adapter that fails to load (a corrupted file, a missing ONNX file, an adapter for
another base) is logged with its reason and recorded as not loaded: the others are served,
its requests get 503 naming the reason, and `/ready` lists it. Only when no model at all
loads does the server give up.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tuneloop.base_model import DEFAULT_BASE, resolve_base
from tuneloop.errors import ModelLoadError, TuneloopError, UsageError
from tuneloop.serve.adapter_folder import parse_adapter_option
from tuneloop.serve.backends import BACKENDS
from tuneloop.serve.batch_runner import BatchRunner
from tuneloop.serve.engine import Engine, Observer
from tuneloop.serve.lanes import Lane, ModelSpec
from tuneloop.serve.metrics import Metrics
from tuneloop.serve.model_dir import servable_variants
from tuneloop.serve.scheduler import Scheduler, SchedulerLimits
from tuneloop.serve.settings import Settings

log = logging.getLogger(__name__)

WARM_UP_TEXT = "Hello"


def model_specs(
    settings: Settings, *, verify_hashes: bool = True, broken: dict[str, str] | None = None
) -> list[ModelSpec]:
    """What to load, checked for naming clashes before any weights are read.

    `verify_hashes=False` skips hashing the optimized variants' files (a quick check of names
    and folders before the server starts; loading verifies them). Variants refused for
    missing or changed files are recorded in `broken` (served id -> reason).
    """
    adapters = dict(parse_adapter_option(value) for value in settings.adapter)
    specs = []
    if settings.base or adapters or not settings.model_dir:
        base = settings.base or DEFAULT_BASE
        resolved = resolve_base(base)
        specs.append(
            ModelSpec(
                name=settings.served_model_name or resolved.name,
                backend="torch",
                path=resolved.spec if resolved.source != "local" else resolved.path,
                adapters=adapters,
                device=settings.device,
                dtype=settings.dtype,
                quantization=settings.quantization,
                threads=settings.compute_threads(),
                base_label=resolved.spec,
            )
        )
    if settings.model_dir:
        specs.extend(_variant_specs(settings.model_dir, settings, verify_hashes, broken))
    _check_unique_names(specs)
    return specs


def _variant_specs(
    folder: Path, settings: Settings, verify_hashes: bool, broken: dict[str, str] | None
) -> list[ModelSpec]:
    specs = []
    variants = servable_variants(folder, verify_hashes=verify_hashes, broken=broken)
    for variant in _chosen(variants, settings.variant, folder):
        aliases = (variant.name,) if variant.recommended else ()
        specs.append(
            ModelSpec(
                name=variant.served_id,
                backend=variant.backend,
                path=variant.folder,
                aliases=aliases,
                device=settings.device,
                dtype=settings.dtype if variant.backend == "torch" else "auto",
                threads=settings.compute_threads(),
                precision=variant.precision,
                base_label=variant.base or variant.name,
            )
        )
    return specs


def _chosen(variants: list, wanted: list[str], folder: Path) -> list:
    """The variants named in `wanted` (`recommended` names the recommended one); all when
    nothing is named. A name that is not servable is an error that lists those that are."""
    if not wanted:
        return variants
    known = {v.variant: v for v in variants}
    recommended = next((v.variant for v in variants if v.recommended), None)
    names = [recommended if w == "recommended" else w for w in wanted]
    missing = [w for w, n in zip(wanted, names, strict=True) if n not in known]
    if missing:
        raise UsageError(
            f"--variant {' '.join(missing)}: not a servable variant of {folder} (one that passed "
            f"its quality gate and whose files are intact); servable: "
            f"{', '.join(known) or 'none'}"
        )
    return [known[n] for n in dict.fromkeys(names)]


def scheduler_limits(settings: Settings) -> SchedulerLimits:
    """The batching limits of every lane, from the server's settings."""
    return SchedulerLimits(
        max_batch_size=settings.max_batch_size,
        max_step_tokens=settings.max_step_tokens,
        max_batch_tokens=settings.max_batch_tokens,
        max_waiting=settings.max_waiting,
        prefill_chunk=settings.prefill_chunk,
    )


def _check_unique_names(specs: list[ModelSpec]) -> None:
    seen: dict[str, str] = {}
    for spec in specs:
        for name in (spec.name, *spec.aliases, *spec.adapters):
            if name in seen:
                raise UsageError(
                    f"two served models would be called {name!r} ({seen[name]} and {spec.name}); "
                    "rename an adapter or set --served-model-name"
                )
            seen[name] = spec.name


def load_engine(settings: Settings, metrics: Metrics, observers: list[Observer] = ()) -> Engine:
    """Load every lane, start the worker, and run a warm-up generation on each served model."""
    not_loaded: dict[str, str] = {}
    lanes = []
    for spec in model_specs(settings, broken=not_loaded):
        try:
            lanes.append(load_lane(spec, settings, not_loaded))
        except Exception as exc:  # keep serving the others; /ready and 503s say why
            reason = _reason(exc)
            log.error("model %s not loaded: %s", spec.name, reason)
            not_loaded.update(dict.fromkeys((spec.name, *spec.aliases, *spec.adapters), reason))
    if not lanes:
        failures = "; ".join(f"{name}: {reason}" for name, reason in not_loaded.items())
        raise ModelLoadError(f"no model could be loaded ({failures or 'none configured'})")
    drift = drift_monitor(settings, metrics)
    engine = Engine(lanes, observers=[metrics, *([drift] if drift else []), *observers])
    engine.models.not_loaded.update(not_loaded)
    for model, (lane, adapter) in engine.models.ids().items():
        info = lane.backend.info
        metrics.add_model(
            lane.name,
            adapter,
            {
                "base": info.extra.get("base", lane.name),
                "backend": info.backend,
                "precision": info.precision,
                "served_as": model,
            },
        )
    if drift is not None:
        drift.attach(engine.lanes)
        drift.start()
    engine.start()
    engine.warm_up(_warm_up_prompt)
    return engine


def drift_monitor(settings: Settings, metrics: Metrics):
    """The drift observer (and its exporter when `drift_export_dir` is set), or None if off."""
    if not settings.drift:
        return None
    from tuneloop.serve.drift_export import DriftExporter
    from tuneloop.serve.drift_monitor import DriftMonitor

    exporter = None
    if settings.drift_export_dir is not None:
        max_bytes = int(settings.drift_export_max_mb * 1_000_000)
        exporter = DriftExporter(settings.drift_export_dir, max_bytes, metrics)
    return DriftMonitor(metrics, settings, exporter)


def load_lane(spec: ModelSpec, settings: Settings, not_loaded: dict[str, str]) -> Lane:
    """One model's backend (adapters that fail to load land in `not_loaded`), runner and
    scheduler, as the server drives them."""
    adapters, spec_without = spec.adapters, _without_adapters(spec)
    backend = BACKENDS[spec.backend](spec_without)
    for name, folder in adapters.items():
        try:
            backend.load_adapter(name, folder)
        except Exception as exc:  # keep serving the others
            not_loaded[name] = _reason(exc)
            log.error("refusing adapter %s: %s", name, not_loaded[name])
    limits = scheduler_limits(settings)
    info = backend.info
    log.info(
        "loaded %s (%s, %s) with adapters: %s",
        spec.name,
        info.backend,
        info.precision,
        ", ".join(backend.adapters) or "none",
    )
    runner = (
        backend.runner(
            limits.max_batch_size,
            prefix_cache=settings.prefix_cache,
            speculate=settings.speculate,
        )
        if hasattr(backend, "runner")
        else BatchRunner(backend, pool_prompts=settings.drift)
    )
    return Lane(spec.name, backend, Scheduler(spec.name, runner, limits), spec.aliases)


def _reason(exc: Exception) -> str:
    """One line for the log, /ready and the 503s: our own messages as they are, others typed."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, TuneloopError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _without_adapters(spec: ModelSpec) -> ModelSpec:
    from dataclasses import replace

    return replace(spec, adapters={})


def _warm_up_prompt(lane: Lane) -> tuple[int, ...]:
    ids = lane.tokenizer.encode(WARM_UP_TEXT, add_special_tokens=False)
    return tuple(ids) or (0,)
