"""deploy/kubernetes: every manifest validates against the Kubernetes 1.30 schemas
(kubernetes-validate, offline and strict), and the manifests fit together and with the
config they carry: the probes reach /healthz and /readyz on the admin port that config
sets, the pods run as non-root, and every secret comes from the Secret the example names."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.deploy_support import DEPLOY, KUBERNETES, documents, read_config

K8S_VERSION = "1.30.0"


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.name}#{i}", doc)
        for path in sorted(KUBERNETES.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for i, doc in enumerate(documents(path))
    ]


def _of_kind(kind: str) -> dict[str, Any]:
    (found,) = [doc for _, doc in _manifests() if doc["kind"] == kind]
    return found


@pytest.mark.parametrize(("where", "manifest"), _manifests(), ids=[w for w, _ in _manifests()])
def test_each_manifest_validates_against_the_schemas(where: str, manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_the_manifests_are_the_ones_a_deployment_needs() -> None:
    kinds = sorted(doc["kind"] for _, doc in _manifests())
    assert kinds == sorted(
        ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Secret", "Service", "Service"]
    )
    assert _of_kind("HorizontalPodAutoscaler")["apiVersion"] == "autoscaling/v2"
    assert _of_kind("PodDisruptionBudget")["apiVersion"] == "policy/v1"
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    # Everything but the example Secret, which holds no real values, is applied.
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}


def test_the_probes_reach_the_admin_port_the_config_sets() -> None:
    pod = _of_kind("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    config = read_config(_of_kind("ConfigMap")["data"]["tollway.yaml"])
    assert ports == {"http": config["server"]["port"], "admin": config["admin"]["port"]}
    # Liveness is the process answering; readiness adds the database and the state store.
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    # The config's listeners are reachable from the kubelet and the Service.
    assert config["server"]["host"] == config["admin"]["host"] == "0.0.0.0"
    service_ports = {p["targetPort"] for doc in documents(KUBERNETES / "service.yaml") for p in doc["spec"]["ports"]}
    assert service_ports == set(ports)


def test_the_pods_run_as_non_root_with_nothing_to_gain() -> None:
    deployment = _of_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["resources"]["requests"]["cpu"]  # what the autoscaler's utilisation is of
    # The journal's folder is a writable volume; the config is mounted read-only.
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/tollway"]["readOnly"] is True and "/var/lib/tollway" in mounts
    config = read_config(_of_kind("ConfigMap")["data"]["tollway.yaml"])
    assert config["storage"]["data_folder"] == "/var/lib/tollway"
    assert pod["terminationGracePeriodSeconds"] > 30  # server.shutdown_timeout_s, then the last records
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert _of_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    assert _of_kind("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]


def test_every_secret_comes_from_the_secret_and_none_is_shipped() -> None:
    (container,) = _of_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    secret = _of_kind("Secret")
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert {ref["name"] for ref in refs.values()} == {secret["metadata"]["name"]}
    assert {ref["key"] for ref in refs.values()} == set(secret["stringData"])
    # The example is only an example: its values are placeholders, and it is not applied.
    assert all("replace-me" in v or v.startswith("redis://") for v in secret["stringData"].values())
    # The config needs no variable without a default that the pod does not set.
    needed = set(re.findall(r"\$\{([A-Z_]+)\}", _of_kind("ConfigMap")["data"]["tollway.yaml"]))
    assert needed <= set(refs)


def test_the_configmap_carries_the_replicas_config() -> None:
    carried = read_config(_of_kind("ConfigMap")["data"]["tollway.yaml"])
    assert carried == read_config((DEPLOY / "tollway.yaml").read_text())
