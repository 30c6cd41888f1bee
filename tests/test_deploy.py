"""deploy/: every manifest, the compose file, the Dockerfile and the Prometheus config pass the
validators users would run, and the pieces agree with each other and with the server."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

DEPLOY = REPO / "deploy"
KUBE = DEPLOY / "kubernetes"
# The Deployment's preStop uses the `sleep` action, in every release from 1.30 on.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "Kustomization"}
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(BIN))
    if path is None:
        pytest.skip(f"{name} is not installed (the [dev] extra or scripts/setup.sh installs it)")
    return path


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifest_files() -> list[Path]:
    files = sorted(KUBE.rglob("*.yaml"))
    return [f for f in files if "prometheus-adapter" not in f.parts]


@pytest.mark.parametrize("path", ["Dockerfile", "prometheus/Containerfile"])
def test_dockerfile_lints_clean(path):
    result = subprocess.run(
        [tool("hadolint"), "--failure-threshold", "info", str(DEPLOY / path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_non_root_with_a_healthcheck_on_a_served_route():
    from tuneloop.serve.app import build_app  # noqa: F401 - the route table is checked below

    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^USER 10001", text, re.M), "the runtime stage must not run as root"
    assert "/health" in text.split("HEALTHCHECK", 1)[1].split("\n\n", 1)[0]
    assert text.count("FROM ") >= 2, "multi-stage: the build tools stay out of the image"
    assert "ARG VARIANT=cpu" in text and '"$VARIANT" = "cuda"' in text


def test_image_copies_what_the_package_build_reads():
    """`pip install /src` needs setup.py, which finds the packages of every stage folder."""
    tree = ast.parse((REPO / "setup.py").read_text())
    (stages,) = [
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and node.targets[0].id == "STAGE_FOLDERS"
    ]
    text = (DEPLOY / "Dockerfile").read_text()
    sent = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert re.search(r"^COPY pyproject.toml setup.py ", text, re.M)
    assert {"!pyproject.toml", "!setup.py"} <= set(sent)
    for folder in stages.values():
        assert f"COPY {folder} ./{folder}" in text and f"!{folder}/" in sent, folder


def test_compose_file_matches_the_compose_specification():
    result = subprocess.run(
        [
            tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(DEPLOY / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_mounts_exist_and_drain_fits_the_stop_grace():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith((".", "/")) and "${" not in source:
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
    server = compose["services"]["tuneloop"]
    drain = float(server["environment"]["TUNELOOP_SHUTDOWN_GRACE_S"])
    assert _seconds(server["stop_grace_period"]) > drain


def test_prometheus_config_is_valid():
    result = subprocess.run(
        [tool("promtool"), "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(KUBE)))
def test_every_manifest_validates_against_kubernetes_schemas(path):
    import kubernetes_validate

    for doc in documents(path):
        if doc["kind"] in CRD_KINDS:
            continue  # no schema ships for these; checked by the tests below
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


@pytest.fixture(scope="module", params=["cpu", "gpu"])
def rendered(request) -> dict[str, dict]:
    """The overlay as `kubectl kustomize` renders it, by kind."""
    kubectl = tool("kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(KUBE / "overlays" / request.param)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    return {doc["kind"]: doc for doc in docs} | {"_all": docs, "_overlay": request.param}


def test_rendered_overlay_validates(rendered):
    import kubernetes_validate

    for doc in rendered["_all"]:
        if doc["kind"] not in CRD_KINDS:
            for version in KUBERNETES_VERSIONS:
                kubernetes_validate.validate(doc, version, strict=True)


def test_selectors_probes_and_drain_agree(rendered):
    deployment, service = rendered["Deployment"], rendered["Service"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget", "ServiceMonitor"):
        spec = rendered[kind]["spec"]
        selector = spec["selector"].get("matchLabels", spec["selector"])
        assert selector.items() <= pod_labels.items(), f"{kind} selects no pod"
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    settings = rendered["ConfigMap"]["data"]
    drain = float(settings["TUNELOOP_SHUTDOWN_GRACE_S"])
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + 5
    port_names = {p["name"] for p in container["ports"]}
    assert rendered["ServiceMonitor"]["spec"]["endpoints"][0]["port"] in port_names
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    secret_keys = {e["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert secret_keys == {"TUNELOOP_API_KEYS", "TUNELOOP_ADMIN_KEY"}
    assert "TUNELOOP_API_KEYS" not in settings, "keys belong in the Secret, not the ConfigMap"


def test_settings_in_the_configmap_are_real_server_settings(rendered):
    from tuneloop.serve.settings import Settings

    names = {f"TUNELOOP_{name.upper()}" for name in Settings.model_fields}
    assert set(rendered["ConfigMap"]["data"]) <= names


def test_autoscaler_targets_the_deployment_and_a_served_metric(rendered):
    hpa = rendered["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == rendered["Deployment"]["metadata"]["name"]
    pods = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert pods == ["tuneloop_requests_waiting"]
    adapter = yaml.safe_load((KUBE / "prometheus-adapter" / "values.yaml").read_text())
    served = [rule["name"]["as"] for rule in adapter["rules"]["custom"]]
    assert "tuneloop_requests_waiting" in served
    if rendered["_overlay"] == "gpu":
        assert all(m["type"] == "Pods" for m in hpa["spec"]["metrics"])
        limits = rendered["Deployment"]["spec"]["template"]["spec"]["containers"][0]["resources"]
        assert limits["limits"]["nvidia.com/gpu"] == "1"


def test_queue_metric_exists_on_the_server():
    from prometheus_client import CollectorRegistry

    from tuneloop.serve.metrics import Metrics

    names = {m.name for m in Metrics(CollectorRegistry()).registry.collect()}
    assert "tuneloop_requests_waiting" in names


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match[1]) * (60 if match[2] == "m" else 1)
