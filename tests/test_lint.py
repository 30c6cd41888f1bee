"""The code passes the project's linter (ruff, configured in pyproject.toml)."""

import shutil
import subprocess

import pytest
from conftest import REPO


def test_ruff_check_is_clean():
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(REPO / ".venv" / "bin"))
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the [dev] extra)")
    result = subprocess.run(
        [ruff, "check", "--no-cache", str(REPO)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_top_level_stage_imports():
    """Stage folders install as tuneloop.train etc.; `import train` works only in a checkout."""
    pattern = r"^\s*(from|import) (train|optimize|serve|bench)\b"
    result = subprocess.run(
        ["git", "grep", "-nE", pattern, "--", "*.py"], cwd=REPO, capture_output=True, text=True
    )
    assert result.stdout == "", result.stdout
