"""The NetworkPolicies as the cluster gets them (`kubectl kustomize`), evaluated the way Kubernetes does for the
rules they use: every connection the platform makes is allowed, at both ends, and nothing else is. Who calls
whom is read from the code (each service's ``*_url`` settings), so a new call cannot be forgotten here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic_settings import BaseSettings

from services.directory.settings import DirectorySettings
from services.identity.settings import IdentitySettings
from services.ingest.settings import IngestSettings
from services.ledger.settings import LedgerSettings
from services.portal.settings import PortalSettings
from services.rewards.settings import RewardsSettings
from tests.support.k8s import K8S, container_env, kustomize, objects_of

NAMESPACE = "smartcity"
SETTINGS: dict[str, type[BaseSettings]] = {
    "ingest": IngestSettings,
    "rewards": RewardsSettings,
    "ledger": LedgerSettings,
    "identity": IdentitySettings,
    "directory": DirectorySettings,
    "portal": PortalSettings,
}
PUBLISHED = {"ingest", "ledger", "identity", "directory", "portal"}
"""What the Ingress controller may reach: every API, not the rewards worker (metrics and probes only)."""
WITH_DATABASE = {"ingest", "rewards", "ledger", "identity", "directory", "migrate-databases"}
KAFKA, DNS, POSTGRES = 9092, 53, 5432


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str] = field(hash=False)

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace}


INGRESS_CONTROLLER = Pod("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
PROMETHEUS = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
KUBE_DNS = Pod("kube-system", {"k8s-app": "kube-dns"})
BROKER = Pod(NAMESPACE, {"strimzi.io/cluster": "smartcity", "strimzi.io/name": "smartcity-kafka"})
EXTERNAL_DATABASE = Pod("databases", {"app": "postgresql"})
STRANGERS = (Pod("default", {"app": "curl"}), Pod(NAMESPACE, {"app": "debug"}))


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector's verdict on `labels` (matchLabels and matchExpressions, all ANDed)."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        verdict = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not verdict:
            return False
    return True


def peer_matches(peer: dict[str, Any], policy_namespace: str, pod: Pod) -> bool:
    assert "ipBlock" not in peer, "ipBlock peers are not modelled here"
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], pod.namespace_labels):
            return False
    elif pod.namespace != policy_namespace:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], pod.labels)


def port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    for entry in ports or []:
        assert isinstance(entry["port"], int), "named ports are not modelled here"
    return not ports or any(p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports)


def admits(
    policies: list[dict[str, Any]], direction: str, subject: Pod, other: Pod, port: int, protocol: str
) -> bool:
    """Whether `subject`'s policies let the connection with `other` through, in `direction` (Ingress: `other`
    connects to `subject`; Egress: `subject` connects to `other`). A pod no policy isolates admits anything."""
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    isolating = [
        policy
        for policy in policies
        if policy["metadata"]["namespace"] == subject.namespace
        and selects(policy["spec"]["podSelector"], subject.labels)
        and direction in policy["spec"]["policyTypes"]
    ]
    return not isolating or any(
        (not rule.get(peers_key) or any(peer_matches(p, subject.namespace, other) for p in rule[peers_key]))
        and port_matches(rule.get("ports"), port, protocol)
        for policy in isolating
        for rule in policy["spec"].get(rules_key, [])
    )


def allowed(
    policies: list[dict[str, Any]], source: Pod, target: Pod, port: int, protocol: str = "TCP"
) -> bool:
    """A connection goes through when the source's egress and the target's ingress both allow it."""
    return admits(policies, "Egress", source, target, port, protocol) and admits(
        policies, "Ingress", target, source, port, protocol
    )


@pytest.fixture(scope="module", params=["prod", "dev"])
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, kustomize(K8S / "overlays" / request.param)


def policies_of(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    policies = list(objects_of(objects, "NetworkPolicy").values())
    for policy in policies:
        assert policy["metadata"]["namespace"] == NAMESPACE
        assert policy["spec"]["policyTypes"], policy["metadata"]["name"]  # explicit: no implied types
    return policies


def pods_of(objects: list[dict[str, Any]], kind: str) -> dict[str, Pod]:
    return {
        name: Pod(NAMESPACE, workload["spec"]["template"]["metadata"]["labels"])
        for name, workload in objects_of(objects, kind).items()
    }


def services(objects: list[dict[str, Any]]) -> dict[str, tuple[Pod, int]]:
    """Each platform service's pod and the port its Service forwards to."""
    pods = pods_of(objects, "Deployment")
    return {
        name: (pods[name], service["spec"]["ports"][0]["port"])
        for name, service in objects_of(objects, "Service").items()
        if name in SETTINGS
    }


def calls(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(caller, callee) for every `*_url` setting whose default is another service's local port, as the
    caller's pod sets it: a URL of a Service of the namespace."""
    ports = {port: name for name, (_, port) in services(objects).items()}
    deployments = objects_of(objects, "Deployment")
    found = set()
    for caller, settings in SETTINGS.items():
        env = container_env(objects, deployments[caller], without_secrets=True)
        prefix = settings.model_config["env_prefix"]
        for field_name, info in settings.model_fields.items():
            default = urlsplit(str(info.default)) if field_name.endswith("_url") else None
            if default is None or default.port not in ports or ports[default.port] == caller:
                continue
            variable = f"{prefix}{field_name.upper()}"
            url = urlsplit(env.get(variable, ""))
            assert (url.hostname, url.port) == (ports[default.port], default.port), (caller, variable, url)
            found.add((caller, ports[default.port]))
    return found


def test_ingress_is_denied_by_default_and_each_service_has_its_policy(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = overlay
    policies = policies_of(objects)
    default = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert [(p["spec"]["policyTypes"], p["spec"].get("ingress")) for p in default] == [(["Ingress"], None)]
    by_name = {p["metadata"]["name"]: p for p in policies}
    for name, pod in pods_of(objects, "Deployment").items():
        if name in SETTINGS:
            assert selects(by_name[name]["spec"]["podSelector"], pod.labels), (
                f"no NetworkPolicy of its own: {name}"
            )
            assert "Ingress" in by_name[name]["spec"]["policyTypes"], name


def test_services_reach_exactly_the_services_they_call(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    policies = policies_of(objects)
    graph = calls(objects)
    assert {("portal", s) for s in SETTINGS if s != "portal"} | {("rewards", "ledger")} <= graph
    found = services(objects)
    for caller, (caller_pod, _) in found.items():
        for callee, (callee_pod, port) in found.items():
            if caller != callee:
                assert allowed(policies, caller_pod, callee_pod, port) == ((caller, callee) in graph), (
                    caller,
                    callee,
                )


def test_outside_the_namespace_only_the_ingress_controller_and_prometheus_get_in(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = overlay
    policies = policies_of(objects)
    for name, (pod, port) in services(objects).items():
        assert allowed(policies, PROMETHEUS, pod, port), name
        assert allowed(policies, INGRESS_CONTROLLER, pod, port) == (name in PUBLISHED), name
        for stranger in STRANGERS:
            assert not allowed(policies, stranger, pod, port), (name, stranger)
        assert not allowed(policies, PROMETHEUS, pod, port + 1000), name


def test_every_platform_pod_reaches_dns_kafka_and_only_its_database(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    which, objects = overlay
    policies = policies_of(objects)
    backing = pods_of(objects, "Deployment")
    broker = backing["kafka"] if which == "dev" else BROKER
    database = backing["postgres"] if which == "dev" else EXTERNAL_DATABASE
    platform = {
        name: pod
        for name, pod in {**pods_of(objects, "Deployment"), **pods_of(objects, "Job")}.items()
        if pod.labels.get("app.kubernetes.io/part-of") == "smartcity"
    }
    assert set(SETTINGS) | {"create-topics", "migrate-databases"} == set(platform)
    for name, pod in platform.items():
        assert allowed(policies, pod, KUBE_DNS, DNS, "UDP") and allowed(
            policies, pod, KUBE_DNS, DNS, "TCP"
        ), name
        if which == "dev":
            assert allowed(policies, pod, broker, KAFKA), name
        else:  # Strimzi writes the brokers' own ingress policies: here, the platform's side
            assert admits(policies, "Egress", pod, broker, KAFKA, "TCP"), name
        assert allowed(policies, pod, database, POSTGRES) == (name in WITH_DATABASE), name
        assert not allowed(policies, pod, STRANGERS[0], 443), name
    for stranger in STRANGERS:
        assert not allowed(policies, stranger, database, POSTGRES) or which == "prod"
        if which == "dev":
            assert not allowed(policies, stranger, broker, KAFKA)


def test_the_strimzi_listener_the_policies_open_is_the_clients_one() -> None:
    """The policies open port 9092 on the pods of the Strimzi cluster `smartcity`; the services' bootstrap
    address is that listener, which Strimzi's own policy opens to every pod (no networkPolicyPeers)."""
    (kafka,) = [doc for doc in kustomize(K8S / "kafka") if doc["kind"] == "Kafka"]
    assert kafka["metadata"]["name"] == BROKER.labels["strimzi.io/cluster"]
    (plain,) = [listener for listener in kafka["spec"]["kafka"]["listeners"] if listener["port"] == KAFKA]
    assert "networkPolicyPeers" not in plain
    (config,) = objects_of(kustomize(K8S / "overlays" / "prod"), "ConfigMap").values()
    assert config["data"]["KAFKA_BOOTSTRAP_SERVERS"] == f"smartcity-kafka-bootstrap:{KAFKA}"
