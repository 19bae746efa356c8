"""The structure of deploy/kubernetes and the Dockerfile: they parse, and
their parts point at each other (ports, labels, Secrets, grace, user)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import PYTHON_DIR

from snakepit_bridge.serve import parse_serve_args, split_address

yaml = pytest.importorskip("yaml")

REPO = PYTHON_DIR.parent
MANIFESTS = REPO / "deploy" / "kubernetes"
DOCKERFILE = REPO / "Dockerfile"
HOST_LABELS = {"app.kubernetes.io/name": "snakepit-host"}


def documents(name: str) -> list[dict[str, Any]]:
    """The YAML documents of one manifest file."""
    with open(MANIFESTS / name, encoding="utf-8") as handle:
        return [document for document in yaml.safe_load_all(handle) if document is not None]


def only(name: str, kind: str) -> dict[str, Any]:
    """The one object of ``kind`` in a manifest file."""
    found = [document for document in documents(name) if document["kind"] == kind]
    assert len(found) == 1, f"{name}: expected one {kind}, found {len(found)}"
    return found[0]


def flags(args: list[str]) -> dict[str, str]:
    """``--name=value`` arguments as a dict (``--switch`` maps to "")."""
    parsed: dict[str, str] = {}
    for arg in args:
        assert arg.startswith("--"), f"not a flag: {arg}"
        name, _, value = arg.partition("=")
        parsed[name] = value
    return parsed


@pytest.fixture(scope="module")
def deployment() -> dict[str, Any]:
    """The Deployment."""
    return only("deployment.yaml", "Deployment")


@pytest.fixture(scope="module")
def container(deployment: dict[str, Any]) -> dict[str, Any]:
    """The worker container of the Deployment."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]  # type: ignore[no-any-return]


def test_every_manifest_parses_and_the_kustomization_lists_them_all() -> None:
    files = sorted(path.name for path in MANIFESTS.glob("*.yaml"))
    for name in files:
        for document in documents(name):
            assert document.get("kind") and document.get("apiVersion"), name
    resources = only("kustomization.yaml", "Kustomization")["resources"]
    assert sorted(resources) == sorted(name for name in files if name != "kustomization.yaml")
    namespaces = {
        document["metadata"].get("namespace")
        for name in files
        for document in documents(name)
        if document["kind"] not in ("Namespace", "Kustomization")
    }
    assert namespaces == {only("namespace.yaml", "Namespace")["metadata"]["name"]}


def test_the_container_arguments_are_accepted_by_serve(container: dict[str, Any], tmp_path: Path) -> None:
    assert container.get("command") is None, "the image's ENTRYPOINT (snakepit-worker serve) must run"
    readable = tmp_path / "file"
    readable.write_text("x", encoding="utf-8")
    file_flags = ("--tls-cert", "--tls-key", "--tls-client-ca", "--token-file")
    args = [f"{arg.partition('=')[0]}={readable}" if arg.startswith(file_flags) else arg for arg in container["args"]]
    options = parse_serve_args(args)
    assert options.tls_client_ca and options.token_file and not options.insecure_plaintext


def test_the_probes_use_the_health_port_the_container_declares_and_serves(container: dict[str, Any]) -> None:
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    _, health_port = split_address(flags(container["args"])["--health-listen"])
    _, grpc_port = split_address(flags(container["args"])["--listen"])
    assert ports == {"grpc": grpc_port, "health": health_port}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == health_port, probe
    assert container["readinessProbe"]["grpc"].get("service", "") == ""
    assert container["livenessProbe"]["grpc"]["service"] == "liveness"


def test_the_service_is_headless_and_selects_the_deployments_pods(
    deployment: dict[str, Any], container: dict[str, Any]
) -> None:
    service = only("service.yaml", "Service")
    assert service["spec"]["clusterIP"] == "None"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["name"] == "grpc" and port["port"] == 50051 and port["targetPort"] == "grpc"
    assert any(declared["name"] == "grpc" for declared in container["ports"])


def test_the_secrets_the_deployment_mounts_exist_with_the_files_it_reads(
    deployment: dict[str, Any], container: dict[str, Any]
) -> None:
    secrets = {document["metadata"]["name"]: document for document in documents("secrets.yaml")}
    assert {secret["kind"] for secret in secrets.values()} == {"Secret"}
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    referenced = {volume["secret"]["secretName"] for volume in volumes.values() if "secret" in volume}
    assert referenced and referenced <= secrets.keys()
    tls_types = [secret for secret in secrets.values() if secret.get("type") == "kubernetes.io/tls"]
    assert len(tls_types) == 1
    for flag in ("--tls-cert", "--tls-key", "--tls-client-ca", "--token-file"):
        path = flags(container["args"])[flag]
        directory, _, key = path.rpartition("/")
        volume = volumes[mounts[directory]]
        secret = secrets[volume["secret"]["secretName"]]
        assert key in {**secret.get("data", {}), **secret.get("stringData", {})}, f"{flag}: {path}"


def test_the_termination_grace_covers_the_drain(deployment: dict[str, Any], container: dict[str, Any]) -> None:
    grace = float(flags(container["args"])["--grace"])
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= grace


def test_the_pdb_and_the_network_policy_select_the_workers(deployment: dict[str, Any]) -> None:
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = only("pdb.yaml", "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    policy = only("networkpolicy.yaml", "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    admitted: dict[int, list[Any]] = {}
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            admitted[port["port"]] = rule.get("from", [])
    assert set(admitted) == {50051, 8081}
    assert admitted[50051] == [{"podSelector": {"matchLabels": HOST_LABELS}}]


def test_the_dockerfile_runs_serve_as_a_non_root_user(deployment: dict[str, Any]) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = [line for line in text.splitlines() if line and not line.startswith(("#", " "))]
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(user)
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert 'ENTRYPOINT ["snakepit-worker", "serve"]' in instructions
    assert "EXPOSE 50051 8081" in instructions
    assert "RUN pip install /tmp/snakepit-python && rm -rf /tmp/snakepit-python" in instructions


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_kubectl_kustomize_renders_every_object() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    kinds = sorted(document["kind"] for document in yaml.safe_load_all(rendered) if document)
    expected = ["Deployment", "Namespace", "NetworkPolicy", "PodDisruptionBudget", "Secret", "Secret", "Service"]
    assert kinds == expected
