"""Build the server image (deploy/Dockerfile) with podman, pip inside the build using the host's
package index. Run from anywhere (`make image` runs it):

    python3 deploy/build_image.py [--variant cpu|cuda] [--tag IMAGE] [--base-image IMAGE]

- The base of both stages is `localhost/tuneloop-base:bookworm`, made by
  deploy/build-base-image.sh (debootstrap) when missing; `--base-image
  python:3.11-slim-bookworm` uses the public one where a registry can be reached.
- The host's pip configuration (`pip config list`, environment variables winning as they do
  for pip) becomes the build's /etc/pip.conf, and every local path it names (file:// indexes,
  find-links folders, certificate, constraint file) is mounted read-only at the same place.
  buildah leaves the mount points behind as empty files and folders.
- The CPU build of torch comes from that configuration when it holds `torch==VERSION+cpu`,
  else from PyTorch's CPU index.

The test of the image (tests/test_container.py) imports `podman_options` and `run_options`
from here, so it runs containers the way the build does.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

REPO = Path(__file__).resolve().parents[1]
LOCAL_BASE = "localhost/tuneloop-base:bookworm"
TORCH_VERSION = "2.13.0"  # the Dockerfile's TORCH_VERSION
PUBLIC_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
INDEX_KEYS = {"index-url", "extra-index-url"}


def podman_options() -> list[str]:
    """Global podman options this host needs.

    crun refuses hybrid cgroups (v1 controllers plus controllers on the unified v2 hierarchy),
    "cgroups in hybrid mode not supported"; runc runs them."""
    unified = Path("/sys/fs/cgroup/unified/cgroup.controllers")
    hybrid = unified.exists() and unified.read_text().strip()
    return ["--runtime", "runc"] if hybrid and shutil.which("runc") else []


def run_options() -> list[str]:
    """`podman run` options: resource limits the host can grant.

    A root podman asks for a million open files and processes by default, which fails where
    root lacks CAP_SYS_RESOURCE ("setrlimit `RLIMIT_NOFILE`: Operation not permitted"). The
    server needs far fewer; these stay within the caller's own hard limits."""
    limits = []
    for name, wanted in (("nofile", 16384), ("nproc", 4096)):
        hard = resource.getrlimit(getattr(resource, f"RLIMIT_{name.upper()}"))[1]
        value = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        limits += ["--ulimit", f"{name}={value}:{value}"]
    return limits


def host_pip_settings() -> dict[str, dict[str, str]]:
    """`pip config list` as {section: {key: value}}, the environment's settings in `global`."""
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    )
    if listing.returncode != 0:
        print(f"build image: no pip configuration read ({listing.stderr.strip()})", flush=True)
        return {}
    files: dict[str, dict[str, str]] = {}
    env: dict[str, str] = {}
    for line in listing.stdout.splitlines():
        name, _, value = line.partition("=")
        section, _, key = name.rpartition(".")
        target = env if section == ":env:" else files.setdefault(section, {})
        target[key] = ast.literal_eval(value)
    for options in files.values():  # an environment variable overrides every file's setting
        for key in env:
            options.pop(key, None)
    files.setdefault("global", {}).update(env)
    return files


def local_paths(settings: dict[str, dict[str, str]]) -> list[Path]:
    """Existing local files and folders the settings name (none inside another)."""
    paths = set()
    for options in settings.values():
        for key, value in options.items():
            for word in value.split():
                path = Path(unquote(urlparse(word).path) if word.startswith("file:") else word)
                if not path.is_absolute() or not path.exists():
                    continue
                # An index's pages conventionally link to files beside its `simple/` folder.
                paths.add(path.parent if key in INDEX_KEYS and path.name == "simple" else path)
    return sorted(p for p in paths if not any(q in p.parents for q in paths))


def pip_mounts(workdir: Path) -> list[str]:
    """`podman build` options that hand the host's pip configuration to the build."""
    settings = host_pip_settings()
    config = configparser.ConfigParser(interpolation=None)
    config.read_dict(settings)
    pip_conf = workdir / "pip.conf"
    with pip_conf.open("w") as file:
        config.write(file)
    mounts = ["--volume", f"{pip_conf}:/etc/pip.conf:ro"]
    for path in local_paths(settings):
        mounts += ["--volume", f"{path}:{path}:ro"]
    return mounts


def torch_build_args(variant: str, index_url: str | None) -> list[str]:
    """Build args for torch: the host's index when it has the CPU build, else PyTorch's."""
    if variant != "cpu":
        return []
    if index_url is None:
        cpu_build = f"{TORCH_VERSION}+cpu"
        wanted = f"torch=={cpu_build}"
        probe = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
            + ["--no-deps", "--quiet", wanted],
            capture_output=True,
        )
        if probe.returncode == 0:
            print(f"build image: {wanted} from the host's pip configuration", flush=True)
            return ["--build-arg", "TORCH_INDEX_URL=", "--build-arg", f"TORCH_VERSION={cpu_build}"]
        index_url = PUBLIC_CPU_INDEX
    return ["--build-arg", f"TORCH_INDEX_URL={index_url}"]


def ensure_base(base_image: str) -> None:
    exists = subprocess.run(["podman", "image", "exists", base_image]).returncode == 0
    if not exists and base_image == LOCAL_BASE:
        subprocess.run(["bash", str(REPO / "deploy" / "build-base-image.sh")], check=True)


def build(variant: str, tag: str, base_image: str, torch_index_url: str | None, extra: list[str]):
    ensure_base(base_image)
    with tempfile.TemporaryDirectory(prefix="tuneloop-build-") as workdir:
        command = [
            "podman", *podman_options(), "build",
            "--format", "docker",  # the OCI format has no HEALTHCHECK
            "--network", "host",
            "--file", str(REPO / "deploy" / "Dockerfile"),
            "--ignorefile", str(REPO / "deploy" / "Dockerfile.dockerignore"),
            "--build-arg", f"BASE_IMAGE={base_image}",
            "--build-arg", f"VARIANT={variant}",
            *torch_build_args(variant, torch_index_url),
            *pip_mounts(Path(workdir)),
            "--tag", tag,
            *extra,
            str(REPO),
        ]  # fmt: skip
        print("build image:", " ".join(command), flush=True)
        subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--tag", help="image tag (default: localhost/tuneloop:VARIANT)")
    parser.add_argument("--base-image", default=os.environ.get("BASE_IMAGE", LOCAL_BASE))
    parser.add_argument(
        "--torch-index-url",
        help="index of the CPU torch build (default: the host's pip configuration when it has "
        f"torch=={TORCH_VERSION}+cpu, else {PUBLIC_CPU_INDEX})",
    )
    args, extra = parser.parse_known_args()
    tag = args.tag or f"localhost/tuneloop:{args.variant}"
    try:
        build(args.variant, tag, args.base_image, args.torch_index_url, extra)
    except subprocess.CalledProcessError as error:
        sys.exit(f"build image: {' '.join(error.cmd[:3])} ... failed (exit {error.returncode})")


if __name__ == "__main__":
    main()
