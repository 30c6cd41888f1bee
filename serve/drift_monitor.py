"""Drift of served traffic: an engine observer that scores each adapter's recent requests.

Each served model or adapter whose folder holds a `reference_profile.json` (written by
`tuneloop train`, copied by `tuneloop optimize`) gets a sliding window of its last
`drift_window` finished requests (`serve.drift_window`). On the worker thread a finished
request costs its feature computation and a deque append; a background thread rescores the
windows that changed, at most once per `drift_interval_s`, and sets

- `tuneloop_drift_score{model, adapter, feature, method}`: `psi` and `js` per scalar feature,
  `cosine` for feature `embedding` (the centroid distance), as `drift_scores` returns them;
- `tuneloop_drift_window_requests{model, adapter}`: requests the window holds.

Below `drift_min_requests` no score series exists at all (rather than NaN, which would poison
`avg_over_time` and every other range function over the period): a dashboard shows a gap and
the window gauge shows how far the window has filled.

While any PSI of a model is above `drift_threshold`, its requests go to the exporter
(`serve.drift_export`) when `drift_export_dir` is set.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from tuneloop.drift_profile import ReferenceProfile
from tuneloop.errors import DataError
from tuneloop.serve.drift_window import DriftWindow
from tuneloop.serve.metrics import NO_ADAPTER, Metrics
from tuneloop.serve.requests import RequestRecord, StepStats
from tuneloop.serve.settings import Settings

log = logging.getLogger(__name__)

PROFILE = "reference_profile.json"
Key = tuple[str, str]
"""(lane, adapter or "none")"""


class DriftMonitor:
    def __init__(self, metrics: Metrics, settings: Settings, exporter=None) -> None:
        self.metrics = metrics
        self.settings = settings
        self.exporter = exporter
        self.high: dict[Key, dict[str, float]] = {}
        """Models whose drift is above the threshold, with their PSI per feature."""
        self._lanes: list = []
        self._windows: dict[Key, DriftWindow] = {}
        self._checked: dict[Key, Path | None] = {}
        """Profile file looked up per key (None: none found), so each is read once."""
        self._series: dict[Key, set[tuple[str, str]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- set-up ----

    def attach(self, lanes: list) -> None:
        """Find the profiles of every served model and adapter; log what is watched."""
        self._lanes = lanes
        for lane in lanes:
            for adapter in [None, *lane.backend.adapters]:
                self._window_for(lane.name, adapter)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="tuneloop-drift", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5)
        self.refresh()

    # ---- the engine's reports (worker thread) ----

    def on_step(self, stats: StepStats) -> None:
        pass

    def on_request_finished(self, record: RequestRecord) -> None:
        key = (record.lane, record.adapter or NO_ADAPTER)
        window = self._windows.get(key) or self._window_for(record.lane, record.adapter)
        if window is None or not window.add(record):
            return
        scores = self.high.get(key)
        if scores is not None and self.exporter is not None:
            self.exporter.submit(self.metrics.labels(*key), record, scores)

    # ---- scoring (background thread) ----

    def refresh(self) -> None:
        """Rescore every window that changed; drop windows of unloaded adapters."""
        for key, window in list(self._windows.items()):
            if not self._still_served(key):
                self._drop(key)
            elif window.changed:
                self._publish(key, window, window.score())
        if self.exporter is not None:
            self.exporter.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.drift_interval_s):
            try:
                self.refresh()
            except Exception:  # never let a scoring bug end monitoring
                log.exception("drift scoring failed")

    def _publish(self, key: Key, window: DriftWindow, scores: dict) -> None:
        labels = self.metrics.labels(*key)
        self.metrics.drift_window_requests.labels(*labels).set(len(window))
        fresh = {(feature, method) for feature, methods in scores.items() for method in methods}
        for feature, method in self._series.get(key, set()) - fresh:
            self.metrics.drift.remove(*labels, feature, method)
        for feature, methods in scores.items():
            for method, value in methods.items():
                self.metrics.drift.labels(*labels, feature, method).set(value)
        self._series[key] = fresh
        psi = {f: m["psi"] for f, m in scores.items() if "psi" in m}
        if any(value > self.settings.drift_threshold for value in psi.values()):
            if key not in self.high:
                log.warning(
                    "drift on %s: PSI above %g (%s)",
                    _name(key),
                    self.settings.drift_threshold,
                    ", ".join(f"{f} {v:.2f}" for f, v in sorted(psi.items())),
                )
            self.high[key] = psi
        elif self.high.pop(key, None) is not None:
            log.info("drift on %s is back under %g", _name(key), self.settings.drift_threshold)

    # ---- which models have a profile ----

    def _window_for(self, lane_name: str, adapter: str | None) -> DriftWindow | None:
        key = (lane_name, adapter or NO_ADAPTER)
        if key in self._checked:
            return self._windows.get(key)
        lane = next((lane for lane in self._lanes if lane.name == lane_name), None)
        path = profile_path(lane, adapter) if lane is not None else None
        self._checked[key] = path
        if path is None:
            log.info("drift: %s has no %s; its drift is not scored", _name(key), PROFILE)
            return None
        try:
            profile = ReferenceProfile.load(path)
        except DataError as exc:
            log.error("drift: %s is not scored: %s", _name(key), exc)
            return None
        window = DriftWindow(profile, self.settings.drift_window, self.settings.drift_min_requests)
        self._windows[key] = window
        self.metrics.drift_window_requests.labels(*self.metrics.labels(*key)).set(0)
        pooled = getattr(lane.scheduler.runner, "pool_prompts", False)
        log.info(
            "drift: scoring %s against %s (window %d, scores from %d requests)%s",
            _name(key),
            path,
            self.settings.drift_window,
            self.settings.drift_min_requests,
            ""
            if pooled or profile.centroid is None
            else f"; the {lane.backend.info.backend} backend gives no hidden states, so the "
            "embedding features are not scored",
        )
        return window

    def _still_served(self, key: Key) -> bool:
        lane = next((lane for lane in self._lanes if lane.name == key[0]), None)
        return lane is not None and (key[1] == NO_ADAPTER or key[1] in lane.backend.adapters)

    def _drop(self, key: Key) -> None:
        labels = self.metrics.labels(*key)
        for feature, method in self._series.pop(key, set()):
            self.metrics.drift.remove(*labels, feature, method)
        self._windows.pop(key, None)
        self._checked.pop(key, None)
        self.high.pop(key, None)


def profile_path(lane, adapter: str | None) -> Path | None:
    """The reference profile of an adapter (its folder) or of the lane's model itself (a merged
    model's folder, an optimized variant's folder or the `optimize all` folder above it)."""
    backend = lane.backend
    if adapter is not None:
        folder = getattr(backend, "adapter_folders", {}).get(adapter)
        candidates = [folder] if folder is not None else []
    else:
        folder = Path(backend.info.path)
        candidates = [folder]
        if (folder / "tuneloop_artifact.json").is_file():
            candidates.append(folder.parent)
    for candidate in candidates:
        if (Path(candidate) / PROFILE).is_file():
            return Path(candidate) / PROFILE
    return None


def _name(key: Key) -> str:
    return key[0] if key[1] == NO_ADAPTER else f"{key[0]} adapter {key[1]}"
