"""Run the app under uvicorn, with a graceful drain on SIGTERM (and Ctrl-C).

On the first SIGTERM or SIGINT the server stops admitting requests (503, `/ready` says
draining), lets running requests finish for up to `shutdown_grace_s`, ends whatever is left,
then stops uvicorn and exits 0. A second signal exits at once.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

import uvicorn

from tuneloop.serve.app import build_app
from tuneloop.serve.loading import load_engine
from tuneloop.serve.logs import configure_logging
from tuneloop.serve.requests import FinishReason
from tuneloop.serve.settings import Settings
from tuneloop.serve.state import ServerState

log = logging.getLogger(__name__)

# After the engine is idle, time for the last SSE events to reach their clients.
FLUSH_S = 0.5
DRAIN_POLL_S = 0.1


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self.state = state
        self.exit_code = 0
        self._drain_started = False

    def handle_exit(self, sig: int, frame) -> None:
        if self._drain_started:
            log.warning("second %s: exiting without waiting", signal.Signals(sig).name)
            self.exit_code = 1
            super().handle_exit(sig, frame)
            return
        self._drain_started = True
        threading.Thread(target=self._drain, args=(sig,), daemon=True).start()

    def fail(self) -> None:
        """Loading failed: stop the server with a non-zero exit code."""
        self.exit_code = 1
        self.should_exit = True

    def _drain(self, sig: int) -> None:
        state, grace = self.state, self.state.settings.shutdown_grace_s
        state.draining = True
        engine = state.engine
        if engine is not None:
            engine.draining = True
        log.info("%s: draining, up to %g s for running requests", signal.Signals(sig).name, grace)
        deadline = time.monotonic() + grace
        while engine is not None and engine.busy() and time.monotonic() < deadline:
            time.sleep(DRAIN_POLL_S)
        if engine is not None and engine.busy():
            log.warning("grace period over: ending the requests still running")
            engine.abort_all(FinishReason.SHUTDOWN)
        time.sleep(FLUSH_S)
        log.info("drained; stopping")
        self.should_exit = True


def run(settings: Settings) -> int:
    """Serve until stopped; the exit code is 0 after a graceful drain."""
    configure_logging(settings.log_format, settings.log_level)
    state = ServerState.from_settings(settings)
    holder: dict[str, DrainingServer] = {}
    app = build_app(
        state,
        load=lambda: load_engine(settings, state.metrics),
        on_load_failed=lambda: holder["server"].fail(),
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    server = DrainingServer(config, state)
    holder["server"] = server
    server.run()
    return server.exit_code
