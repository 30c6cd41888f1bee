"""`tuneloop demo` serves the trained adapter and tells the user how to reach it."""

from __future__ import annotations

from tuneloop import demo_run
from tuneloop.serve import cli as serve_cli


def test_demo_serve_stage_prints_urls_and_a_curl_then_serves(monkeypatch, tmp_path, capsys):
    calls = []
    monkeypatch.setattr(serve_cli, "serve", lambda *, settings: calls.append(settings) or 0)
    run = demo_run.DemoRun(out=tmp_path, base="some-base", serve=True)
    assert demo_run.stage_serve(run) == "server stopped"
    (settings,) = calls
    assert settings.base == "some-base"
    assert settings.adapter == [f"support-triage={run.adapter_dir}"]
    out = capsys.readouterr().out
    for text in ("/v1", "/docs", "/metrics", "curl http://127.0.0.1:8000/v1/chat/completions"):
        assert text in out
    assert '"model": "support-triage"' in out
