"""deploy/: the compose file and the Kubernetes manifests say what docs/deploy.md promises: every
role with replicas, a probe and its right command, non-root, resources, secrets referenced and
never inlined. (`docker compose config` is not available here: PyYAML reads them.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from nameko_services.cli import GATEWAY, SERVICES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "kubernetes"
EXPORTER = "metrics"  # the `attune metrics` sidecar of the service pods
UID = 10001  # the image's attune user (deploy/Dockerfile)


def role_command(role: str) -> list[str]:
    """What `attune up` runs for the role (cli.command_for), relative to the image's venv."""
    if role == GATEWAY:
        return ["python", "-m", "gateway.serve", "--config", "nameko.yaml"]
    return ["nameko", "run", "--config", "nameko.yaml",
            f"nameko_services.{role}.service:{role.capitalize()}Service"]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def deployments(manifests: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"].removeprefix("attune-"): d for d in manifests
            if d["kind"] == "Deployment"}


def test_compose_runs_every_role_with_replicas_a_healthcheck_and_its_command(compose):
    services = compose["services"]
    for role in (*SERVICES, GATEWAY):
        service = services[role]
        assert service["command"] == role_command(role), role
        assert service["deploy"]["replicas"] >= 1, role
        probe = service["healthcheck"]["test"]
        assert probe == ["CMD", "attune", "health", "--role", role], role
        # ${ATTUNE_IMAGE:-attune:0.1.0}, read raw or (once another test has installed
        # nameko's YAML resolver) substituted: this file alone sees it raw.
        assert service["image"].removesuffix("}").endswith("attune:0.1.0"), role
        assert service["secrets"] == ["attune_keys"], role
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["gateway"]["deploy"]["replicas"] >= 2
    assert services["worker"]["deploy"]["replicas"] >= 2
    for infra in ("postgres", "rabbitmq"):
        assert services[infra]["healthcheck"]["test"], infra


def test_compose_takes_every_password_from_secret_files_never_inline(compose):
    assert set(compose["secrets"]) == {"attune_keys", "database_password"}
    assert all(s["file"].startswith("secrets/") for s in compose["secrets"].values())
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] \
        == "/run/secrets/database_password"
    assert compose["services"]["rabbitmq"]["env_file"] == ["secrets/rabbitmq.env"]
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search("PASS|SECRET|JWT|KEY", key):  # only paths to files, never values
                assert key.endswith("_FILE") and value.startswith("/run/secrets/"), (name, key)
            if key.endswith("_URL") or key.endswith("_URI"):  # no password in a URL
                assert not re.match(r"^\w[\w+]*://[^/@]*:[^/@]*@", value), (name, key)


def test_each_role_is_a_deployment_with_probes_resources_and_its_command(manifests):
    found = deployments(manifests)
    assert set(found) == {*SERVICES, GATEWAY}
    for role, deployment in found.items():
        spec = deployment["spec"]["template"]["spec"]
        main = next(c for c in spec["containers"] if c["name"] == role)
        assert main["image"] == "attune", role
        assert main["command"] == role_command(role), role
        assert deployment["spec"]["replicas"] >= 1, role
        for container in spec["containers"] + spec.get("initContainers", []):
            assert container["resources"]["requests"] and container["resources"]["limits"]
            assert container.get("livenessProbe"), (role, container["name"])
        if role == GATEWAY:
            assert main["readinessProbe"]["httpGet"]["path"] == "/health"
            assert main["livenessProbe"]["tcpSocket"]["port"] == "http"
        else:
            for probe in ("readinessProbe", "livenessProbe"):
                command = main[probe]["exec"]["command"]
                assert command[:4] == ["attune", "health", "--role", role], (role, probe)


def test_every_pod_runs_as_the_unprivileged_user_and_mounts_the_keys_secret(manifests):
    pods = [d["spec"]["template"]["spec"] for d in manifests if d["kind"] in ("Deployment", "Job")]
    assert len(pods) == 6
    for pod in pods:
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] == UID
        for container in pod["containers"] + pod.get("initContainers", []):
            assert not container.get("securityContext", {}).get("privileged", False)
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            if container["name"] == EXPORTER:  # reads the pod's metrics, never a key
                assert "/run/secrets/attune_keys" not in mounts
                continue
            assert mounts["/run/secrets/attune_keys"]["readOnly"] is True
        keys = next(v for v in pod["volumes"] if v["name"] == "keys")
        assert keys["secret"]["secretName"] == "attune-keys"
    assert not [d for d in manifests if d["kind"] == "Secret"]  # made by the operator, not here


def test_workers_and_sensors_reach_the_api_through_their_own_pods_gateway(manifests):
    found = deployments(manifests)
    for role in ("worker", "sensor"):
        spec = found[role]["spec"]["template"]["spec"]
        sidecar = spec["initContainers"][0]
        assert sidecar["restartPolicy"] == "Always"
        assert sidecar["command"] == role_command(GATEWAY)
        for container in (sidecar, spec["containers"][0]):
            paths = [m["mountPath"] for m in container["volumeMounts"]]
            assert "/var/lib/attune/run/api" in paths, (role, container["name"])


def test_the_kustomization_lists_every_manifest(manifests):
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == on_disk


def test_every_process_counts_into_its_pods_folder_and_service_pods_export_it(manifests):
    """Metrics in Kubernetes (docs/observability.md): the folder of the config map is an
    emptyDir every container of a pod mounts; gateway pods serve the sums at /metrics, the
    other roles' pods run `attune metrics` beside them."""
    config = next(m for m in manifests if m["kind"] == "ConfigMap")["data"]
    folder = config["PROMETHEUS_MULTIPROC_DIR"]
    pods = {d["metadata"]["name"]: d["spec"]["template"]["spec"]
            for d in manifests if d["kind"] in ("Deployment", "Job")}
    for name, pod in pods.items():
        volume = next(v for v in pod["volumes"] if v["name"] == "metrics")
        assert "emptyDir" in volume, name
        for container in pod["containers"] + pod.get("initContainers", []):
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get(folder) == "metrics", (name, container["name"])
    for role, deployment in deployments(manifests).items():
        containers = deployment["spec"]["template"]["spec"]["containers"]
        exporters = [c for c in containers if c["name"] == EXPORTER]
        if role == GATEWAY:
            assert not exporters
            continue
        assert len(exporters) == 1, role
        assert exporters[0]["command"][:2] == ["attune", "metrics"]
        port = exporters[0]["command"][exporters[0]["command"].index("--port") + 1]
        assert [p["containerPort"] for p in exporters[0]["ports"]] == [int(port)]
