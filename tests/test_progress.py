"""Progress of long stages: the time-left estimate, each step's time, and the stage's total."""

from __future__ import annotations

import logging

import pytest

from tuneloop import progress


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0 s"), (42, "42 s"), (185, "3 min 05 s"), (3725, "1 h 02 min")],
)
def test_durations_read_like_a_person_would_say_them(seconds, text):
    assert progress.duration(seconds) == text


def test_steps_log_each_step_its_time_and_the_time_left(caplog, monkeypatch):
    clock = iter([0.0, 0.0, 10.0, 10.0, 30.0, 30.0, 60.0, 60.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    steps = progress.Steps("optimize all", 3)
    with caplog.at_level(logging.INFO, logger="tuneloop.progress"):
        with steps.step("merging"):
            pass
        with steps.step("exporting"):
            pass
        with steps.step("verifying"):
            pass
        assert steps.finish() == 60.0
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "optimize all [1/3]: merging",
        "optimize all [1/3]: merging took 10 s (10 s so far, about 20 s left)",
        "optimize all [2/3]: exporting",
        "optimize all [2/3]: exporting took 20 s (30 s so far, about 15 s left)",
        "optimize all [3/3]: verifying",
        "optimize all [3/3]: verifying took 30 s (1 min 00 s so far)",
        "optimize all: done in 1 min 00 s",
    ]


def test_a_failing_step_is_not_counted_as_done():
    steps = progress.Steps("stage", 2)
    with pytest.raises(RuntimeError), steps.step("breaks"):
        raise RuntimeError("boom")
    assert steps.done == 0


def test_bars_off_a_terminal_print_at_most_every_ten_seconds(capsys):
    bar = progress.bar(total=3, desc="answers", unit="answer")
    assert bar.mininterval == progress.FILE_INTERVAL_S  # pytest's stderr is not a terminal
    bar.update(3)
    bar.close()
    assert "3/3" in capsys.readouterr().err
