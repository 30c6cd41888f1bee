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


def run_in(venv_root: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(venv_root / "bin" / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        env=env,
        cwd=venv_root,
        timeout=120,
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
