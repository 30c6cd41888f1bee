"""`tuneloop demo` runs every stage this version has and names the ones it does not have yet."""

from __future__ import annotations

from tuneloop import cli, demo_run
from tuneloop.errors import NotBuiltYetError


def test_demo_reports_each_stage(tiny_model_dir, tmp_path, capsys, monkeypatch):
    code = cli.main(
        ["demo", "--base", str(tiny_model_dir), "--out", str(tmp_path), "--no-serve", "--quick"]
    )
    out = capsys.readouterr().out
    assert code == 0
    summary = out.split("== demo summary ==")[1].splitlines()
    lines = {
        name: next(line for line in summary if line.strip().startswith(name))
        for name, _, _ in demo_run.STAGES
    }
    for stage in ("base model", "data prepare", "train", "eval"):
        assert "done in" in lines[stage], lines[stage]
    assert "category accuracy" in lines["eval"]
    assert (tmp_path / "adapters" / "support-triage" / "tuneloop_adapter.json").is_file()
    assert "skipped (--no-serve)" in lines["serve"]


def test_stages_after_a_missing_one_are_skipped(tiny_model_dir, tmp_path, capsys, monkeypatch):
    def not_built(run):
        raise NotBuiltYetError("not yet")

    stages = [
        (n, not_built if n == "train" else (lambda run: "ok"), needs)
        for n, _, needs in demo_run.STAGES
    ]
    monkeypatch.setattr(demo_run, "STAGES", stages)
    demo_run.demo(out=tmp_path, base=str(tiny_model_dir), serve=False)
    out = capsys.readouterr().out
    assert "train: not built yet" in out
    assert "skipped (needs train)" in out
    assert "data prepare  done in" in out
