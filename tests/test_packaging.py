"""The wheel installs into a fresh virtual environment and its console script works there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build from a copy of the files git would commit, so no stale build/ or .venv leaks in
    and the checkout is left untouched (setuptools builds in the source tree)."""
    source = tmp_path_factory.mktemp("source")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in listed:
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=True,
    )
    (built,) = out.glob("tuneloop-*.whl")
    return built


def test_wheel_installs_stages_under_the_tuneloop_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.startswith("tuneloop-")}
    assert top_level == {"tuneloop"}, "nothing but tuneloop/ may land in site-packages"
    for module in ("train", "optimize", "serve", "bench"):
        assert f"tuneloop/{module}/__init__.py" in names
    assert "tuneloop/demo/support_triage.jsonl" in names
    assert "tuneloop/demo/DATA_CARD.md" in names


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    """A new venv with only the wheel installed; dependencies are borrowed from this one.

    Reinstalling torch and transformers would add minutes without testing anything of ours,
    so a .pth file puts the current environment's site-packages *after* the new one: the
    tuneloop found first is the wheel's (the editable install's hook is not activated).
    """
    root = tmp_path_factory.mktemp("venv")
    venv.create(root, with_pip=True)
    python = root / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    new_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(new_site, "borrowed-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return root


def run_in(venv_root: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(venv_root / "bin" / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        env=env,
        cwd=venv_root,
        timeout=timeout,
    )


def test_console_script_help_from_the_wheel(fresh_venv):
    result = run_in(fresh_venv, "tuneloop", "--help")
    assert result.returncode == 0, result.stderr
    assert "tuneloop data check|prepare" in result.stdout


def test_imports_come_from_the_installed_wheel(fresh_venv):
    result = run_in(
        fresh_venv,
        "python",
        "-c",
        "import tuneloop.serve, tuneloop.demo; print(tuneloop.serve.__file__); "
        "print(tuneloop.demo.DEMO_DATA.is_file())",
    )
    location, data_exists = result.stdout.split()
    assert location.startswith(str(fresh_venv)) and data_exists == "True"


def test_doctor_and_demo_path_from_the_wheel(fresh_venv):
    doctor = run_in(fresh_venv, "tuneloop", "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "torch" in doctor.stdout
    path = run_in(fresh_venv, "tuneloop", "data", "demo-path").stdout.strip()
    assert path.startswith(str(fresh_venv)) and Path(path).is_file()


# --- what the wheel holds, and every stage run from it ------------------------------------


def stage_folders() -> dict[str, str]:
    """setup.py's STAGE_FOLDERS (package -> folder), read without running setup()."""
    import ast

    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "STAGE_FOLDERS":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no STAGE_FOLDERS")


def source_modules() -> set[str]:
    """The wheel paths of the source tree's Python files (stage folders map under tuneloop/)."""
    folders = {folder: package.replace(".", "/") for package, folder in stage_folders().items()}
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    modules = set()
    for name in listed:
        folder, _, rest = name.partition("/")
        if folder in folders and rest:
            modules.add(f"{folders[folder]}/{rest}")
    return modules


def test_wheel_holds_every_module_of_the_source_tree(wheel):
    in_wheel = {n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".py")}
    expected = source_modules()
    assert expected - in_wheel == set(), "source files the wheel leaves out"
    assert in_wheel - expected == set(), "wheel files with no source in the tree"


def test_server_from_the_wheel_answers_a_chat_completion(fresh_venv, tiny_model_dir, tmp_path):
    import httpx
    from serving.serve_helpers import start_server

    server = start_server(
        ["--base", str(tiny_model_dir)], tmp_path, tuneloop=[str(fresh_venv / "bin" / "tuneloop")]
    )
    try:
        model = httpx.get(f"{server.url}/v1/models", timeout=10).json()["data"][0]["id"]
        reply = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["role"] == "assistant"
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert "tuneloop_requests_total" in metrics
    finally:
        assert server.stop() == 0, server.log()[-3000:]


def test_data_train_optimize_and_monitor_from_the_wheel(fresh_venv, tiny_model_dir, tmp_path):
    """Every stage a user runs, through the wheel's console script, on a tiny model."""
    from tuneloop.demo import DEMO_DATA

    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(DEMO_DATA.read_text().splitlines()[:40]) + "\n")
    base = str(tiny_model_dir)

    def tuneloop(*argv: str) -> subprocess.CompletedProcess:
        result = run_in(fresh_venv, "tuneloop", *argv, timeout=600)
        assert result.returncode == 0, f"tuneloop {' '.join(argv)}:\n{result.stderr[-3000:]}"
        return result

    assert "40" in tuneloop("data", "check", str(data), "--base", base).stdout
    adapter = tmp_path / "adapter"
    tuneloop(
        "train", "--data", str(data), "--out", str(adapter), "--base", base,
        "--max-steps", "2", "--profile-examples", "8", "--precision", "fp32",
    )  # fmt: skip
    assert (adapter / "adapter_model.safetensors").is_file()
    merged, onnx = tmp_path / "merged", tmp_path / "onnx-fp32"
    tuneloop("optimize", "merge", "--adapter", str(adapter), "--out", str(merged))
    tuneloop("optimize", "export", "--model", str(merged), "--out", str(onnx), "--data", str(data))
    assert (onnx / "model.onnx").is_file()
    verify = run_in(
        fresh_venv, "tuneloop", "optimize", "verify", "--reference", str(merged),
        "--candidate", str(onnx), "--data", str(data), "--samples", "4", "--no-speed",
        timeout=600,
    )  # fmt: skip
    assert verify.returncode in (0, 1), verify.stderr[-3000:]  # 1: the gate judged and failed
    assert (onnx / "verify.json").is_file()
    drift = run_in(
        fresh_venv, "tuneloop", "monitor", "drift", "--reference",
        str(adapter / "reference_profile.json"), "--data", str(data), "--json",
    )  # fmt: skip
    assert drift.returncode in (0, 1), drift.stderr[-3000:]  # 1: a PSI above the threshold
    assert "psi" in drift.stdout
