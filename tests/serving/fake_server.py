"""The real server (app, engine, scheduler, uvicorn, SIGTERM drain) over the fake model, as a
process: for load, disconnect and shutdown tests that need many requests but no real model.

    PYTHONPATH=tests python tests/serving/fake_server.py PORT STEP_DELAY_S

Settings come from `TUNELOOP_*` environment variables. Each forward pass of the fake model
sleeps STEP_DELAY_S, so requests take a predictable time whatever the machine.
"""

from __future__ import annotations

import collections
import sys
import time

import uvicorn

from serving.serve_fakes import FakeBackend, fake_state
from tuneloop.serve.app import build_app
from tuneloop.serve.logs import configure_logging
from tuneloop.serve.server import DrainingServer
from tuneloop.serve.settings import Settings


class PacedFakeBackend(FakeBackend):
    def __init__(self, step_delay_s: float) -> None:
        super().__init__()
        self.step_delay_s = step_delay_s
        self.calls = collections.deque(maxlen=64)  # the fake's own record must not grow

    def forward(self, batch):
        time.sleep(self.step_delay_s)
        return super().forward(batch)


def main(port: int, step_delay_s: float) -> int:
    settings = Settings(port=port)
    configure_logging(settings.log_format, settings.log_level)
    state = fake_state(settings, PacedFakeBackend(step_delay_s))
    config = uvicorn.Config(
        build_app(state),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    server = DrainingServer(config, state)
    server.run()
    state.engine.stop()
    return server.exit_code


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), float(sys.argv[2])))
