"""The deployment manifests (docker-compose, Prometheus, Kubernetes, Strimzi topics, AsyncAPI) against the
code they deploy: every service is deployed, probed and scraped, and every topic is declared exactly as in
the topic registry (services/common/topics.py), so the two cannot drift apart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from services.common import attestation, schemas, topics
from services.common.events import cloudevent_headers
from services.common.topics import ALL_TOPICS, PRIMARY_TOPICS
from services.ingest.checks import Reason, Rejection
from services.ingest.mqtt import ACKS_TOPIC, READINGS_TOPIC, ack
from services.portal.settings import PortalSettings
from tests.support.k8s import kustomize

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
IMAGE = "smartcity"

# Each service: its port and the setting that changes it (services/<name>/settings.py).
SERVICES: dict[str, tuple[int, str]] = {
    "ingest": (8101, "INGEST_PORT"),
    "rewards": (8102, "REWARDS_WEB_PORT"),
    "ledger": (8103, "LEDGER_PORT"),
    "identity": (8104, "IDENTITY_PORT"),
    "directory": (8105, "DIRECTORY_PORT"),
    "portal": (8106, "PORTAL_PORT"),
}
PROD_REPLICAS = {"ingest": 3, "rewards": 1, "ledger": 2, "identity": 2, "directory": 2, "portal": 2}
WITH_DATABASE = {"ingest", "rewards", "ledger", "identity", "directory"}
"""The services deployed with the PostgreSQL server (DATABASE_URL): all but the portal, which keeps nothing."""
KAFKA_USERS = {**{service: service for service in topics.SERVICES}, "portal": topics.ANALYST}
"""The Kafka user each service runs as: its own, except the portal, whose impact page reads as the analysts."""
PORTAL_UPSTREAMS = set(PortalSettings().upstreams())
"""The services the portal passes the pages' API calls on to (PORTAL_<SERVICE>_URL)."""


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    """Every object of every YAML file under k8s/ (multi-document files included)."""
    return [(path, doc) for path in sorted(K8S.rglob("*.yaml")) for doc in load_docs(path)]


def of_kind(kind: str, under: Path = K8S) -> list[dict[str, Any]]:
    return [doc for path, doc in k8s_objects() if doc.get("kind") == kind and path.is_relative_to(under)]


def container_of(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return container


def service_deployments() -> dict[str, dict[str, Any]]:
    """The Deployments of the base that run the platform image, by name."""
    return {
        doc["metadata"]["name"]: doc
        for doc in of_kind("Deployment", K8S / "base")
        if container_of(doc)["image"].split(":")[0] == IMAGE
    }


def test_service_table_names_real_services() -> None:
    for name in SERVICES:
        assert (ROOT / "services" / name / "__init__.py").is_file(), name
    assert WITH_DATABASE.issubset(SERVICES)
    assert set(KAFKA_USERS) == set(SERVICES)
    assert PORTAL_UPSTREAMS.issubset(set(SERVICES) - {"portal"})


# --- Docker image -------------------------------------------------------------------------------------


def test_dockerfile_runs_as_non_root_and_listens_on_all_interfaces() -> None:
    text = (ROOT / "Dockerfile").read_text()
    final_stage = text.rsplit("\nFROM ", 1)[1]
    users = [line.split()[1] for line in final_stage.splitlines() if line.startswith("USER ")]
    assert users, "the final stage sets no USER"
    assert users[-1].split(":")[0] not in {"0", "root"}
    assert "BIND_HOST=0.0.0.0" in final_stage
    assert "LOG_FORMAT=json" in final_stage
    # The schemas sit next to the services package, where services/common/schemas.py looks for them.
    assert "COPY schemas ./schemas" in text and "COPY services ./services" in text


def test_dockerignore_keeps_what_the_image_needs() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert not ignored & {"services", "schemas", "pyproject.toml", "README.md", "*", "**"}


# --- docker-compose -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(ROOT / "docker-compose.yml")


@pytest.mark.parametrize("name", SERVICES)
def test_compose_runs_each_service_healthchecked_after_its_dependencies(
    compose: dict[str, Any], name: str
) -> None:
    port, port_env = SERVICES[name]
    service = compose["services"].get(name)
    assert service is not None, f"{name} is not in docker-compose.yml"
    assert service["command"] == ["python", "-m", f"services.{name}"]
    assert str(service["environment"][port_env]) == str(port)
    assert service["environment"]["BIND_HOST"] == "0.0.0.0"
    assert service["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{port}:{port}" in service["ports"]
    depends = {dep: cond["condition"] for dep, cond in service["depends_on"].items()}
    assert depends["kafka"] == "service_healthy"
    assert depends["topics"] == "service_completed_successfully"
    if name in WITH_DATABASE:
        assert service["environment"]["DATABASE_URL"].startswith("postgresql://")
        assert depends["postgres"] == "service_healthy"
        assert depends["migrate"] == "service_completed_successfully"


def test_compose_portal_passes_calls_to_the_healthy_services(compose: dict[str, Any]) -> None:
    portal = compose["services"]["portal"]
    depends = {dep: cond["condition"] for dep, cond in portal["depends_on"].items()}
    for name in PORTAL_UPSTREAMS:
        assert portal["environment"][f"PORTAL_{name.upper()}_URL"] == f"http://{name}:{SERVICES[name][0]}"
        assert depends[name] == "service_healthy", name


def test_compose_builds_one_image_and_creates_topics_before_the_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    built = {name: s["image"] for name, s in services.items() if "build" in s}
    assert set(SERVICES) <= set(built)
    assert len(set(built.values())) == 1, built
    topics = services["topics"]
    assert topics["command"][:2] == ["sh", "-c"]
    assert topics["command"][2].startswith("smartcity topics create ")
    assert topics["command"][2].endswith("&& smartcity topics acls")
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["ledger"]["environment"]["LEDGER_SIGNING_KEY"]
    for name in ("kafka", "postgres"):
        assert services[name]["healthcheck"]["test"], name


def test_compose_references_resolve(compose: dict[str, Any]) -> None:
    services = compose["services"]
    volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts a missing {source}"
            else:
                assert source in volumes, f"{name} uses an undeclared volume {source}"


def test_compose_publishes_ports_on_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for mapping in service.get("ports", []):
            assert str(mapping).startswith("127.0.0.1:"), f"{name} publishes {mapping} beyond loopback"


def test_compose_ingest_bridges_the_mosquitto_broker(compose: dict[str, Any]) -> None:
    services = compose["services"]
    mosquitto = services["mosquitto"]
    assert mosquitto["image"] == "eclipse-mosquitto:2"
    assert "127.0.0.1:1883:1883" in mosquitto["ports"]
    assert "./deploy/mosquitto/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro" in mosquitto["volumes"]
    assert mosquitto["healthcheck"]["test"]
    conf = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    directives = {tuple(line.split()) for line in conf if line.strip() and not line.startswith("#")}
    assert {("listener", "1883"), ("allow_anonymous", "true")} <= directives

    ingest = services["ingest"]
    url = urlsplit(ingest["environment"]["INGEST_MQTT_URL"])
    assert (url.scheme, url.hostname, url.port) == ("mqtt", "mosquitto", 1883)
    assert ingest["depends_on"]["mosquitto"]["condition"] == "service_healthy"


def test_prometheus_scrapes_every_service_metrics_endpoint(compose: dict[str, Any]) -> None:
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    config = load_yaml(ROOT / "deploy" / "prometheus" / "prometheus.yml")
    scraped = {
        (target, job.get("metrics_path", "/metrics"))
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    for name, (port, _) in SERVICES.items():
        assert (f"{name}:{port}", "/metrics") in scraped, f"Prometheus does not scrape {name}"


def test_grafana_datasource_is_the_compose_prometheus(compose: dict[str, Any]) -> None:
    provisioning = load_yaml(ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    (datasource,) = provisioning["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in compose["services"]


# --- Kubernetes ---------------------------------------------------------------------------------------


def test_every_k8s_file_parses_into_typed_objects() -> None:
    objects = k8s_objects()
    assert objects
    for path, doc in objects:
        assert doc.get("kind"), f"{path}: an object without kind"
        if doc["kind"] != "Kustomization":
            assert doc.get("apiVersion") and doc.get("metadata", {}).get("name"), path


def test_base_deploys_exactly_the_services() -> None:
    assert set(service_deployments()) == set(SERVICES)


@pytest.mark.parametrize("name", SERVICES)
def test_k8s_deployment_is_probed_secured_and_scraped(name: str) -> None:
    port, port_env = SERVICES[name]
    deployment = service_deployments()[name]
    pod = deployment["spec"]["template"]
    container = container_of(deployment)
    assert container["command"] == ["python", "-m", f"services.{name}"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port in ports.values()
    env = {e["name"]: e for e in container.get("env", [])}
    assert env[port_env]["value"] == str(port)

    for probe, path in (
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ):
        get = container[probe]["httpGet"]
        assert get["path"] == path, (name, probe)
        assert ports.get(get["port"], get["port"]) == port, (name, probe)

    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"

    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # Service links would set e.g. INGEST_PORT=tcp://... in every pod and break the *_PORT settings.
    assert spec["enableServiceLinks"] is False
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), (name, kind)
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    for path in ("/tmp", "/var/lib/smartcity"):
        assert "emptyDir" in volumes[mounts[path]], (name, path)
    assert {"configMapRef": {"name": "smartcity-config"}} in container["envFrom"]
    if name in WITH_DATABASE:
        database = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert database == {"name": "smartcity-secrets", "key": "DATABASE_URL"}, name
    else:
        assert "DATABASE_URL" not in env, name


def test_k8s_portal_passes_calls_to_the_in_cluster_services() -> None:
    env = {e["name"]: e for e in container_of(service_deployments()["portal"]).get("env", [])}
    services = {s["metadata"]["name"]: s for s in of_kind("Service", K8S / "base")}
    for name in PORTAL_UPSTREAMS:
        (port,) = services[name]["spec"]["ports"]
        assert env[f"PORTAL_{name.upper()}_URL"]["value"] == f"http://{name}:{port['port']}"


@pytest.mark.parametrize("name", SERVICES)
def test_k8s_service_matches_its_deployment(name: str) -> None:
    port, _ = SERVICES[name]
    deployment = service_deployments()[name]
    services = {s["metadata"]["name"]: s for s in of_kind("Service", K8S / "base")}
    assert name in services, f"no Service for {name}"
    spec = services[name]["spec"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    container_ports = {p["name"]: p["containerPort"] for p in container_of(deployment)["ports"]}
    (service_port,) = spec["ports"]
    assert service_port["port"] == port
    assert container_ports.get(service_port["targetPort"], service_port["targetPort"]) == port


def test_k8s_secret_references_exist_in_the_secret_template() -> None:
    (secret,) = of_kind("Secret", K8S / "base")
    keys = set(secret["stringData"])
    assert keys == {
        "DATABASE_URL",
        "LEDGER_SIGNING_KEY",
        "IDENTITY_CITY_KEY",
        "IDENTITY_WALLET_KEY",
        "INGEST_ATTESTOR_KEY",
        "REWARDS_ORACLE_KEY",
        "DIRECTORY_PUBLISHER_KEY",
    }
    for workload in [*service_deployments().values(), *of_kind("Job", K8S / "base")]:
        workload_env = container_of(workload).get("env", [])
        kafka_user = {e["name"]: e.get("value") for e in workload_env}.get("KAFKA_SASL_USERNAME")
        for env in workload_env:
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["name"] == kafka_user:
                # The Secret Strimzi's User Operator keeps the Kafka password of the user the workload runs as in.
                assert (env["name"], ref["key"], ref["optional"]) == ("KAFKA_SASL_PASSWORD", "password", True)
            elif ref:
                assert ref["name"] == secret["metadata"]["name"]
                assert ref["key"] in keys, (workload["metadata"]["name"], ref["key"])
    ledger_env = {e["name"] for e in container_of(service_deployments()["ledger"])["env"]}
    assert "LEDGER_SIGNING_KEY" in ledger_env


def test_k8s_topics_job_creates_replicated_topics() -> None:
    jobs = {job["metadata"]["name"]: job for job in of_kind("Job", K8S / "base")}
    command = container_of(jobs["create-topics"])["command"]
    assert command == ["smartcity", "topics", "create", "--replication-factor", "3"]


def kustomizations() -> list[Path]:
    return sorted(K8S.rglob("kustomization.yaml"))


@pytest.mark.parametrize("path", kustomizations(), ids=lambda p: str(p.relative_to(K8S)))
def test_kustomization_files_exist(path: Path) -> None:
    kustomization = load_yaml(path)
    referenced = list(kustomization.get("resources", []))
    referenced += [p["path"] for p in kustomization.get("patches", []) if "path" in p]
    assert referenced
    for entry in referenced:
        target = path.parent / entry
        assert target.is_file() or (target / "kustomization.yaml").is_file(), f"{path}: {entry} is missing"


@pytest.mark.parametrize("path", kustomizations(), ids=lambda p: str(p.parent.relative_to(K8S)))
def test_kustomization_renders(path: Path) -> None:
    """What `kubectl apply -k` would send: every kustomization builds, and into the namespace smartcity."""
    objects = kustomize(path.parent)
    assert objects
    for doc in objects:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "smartcity", (doc["kind"], doc["metadata"]["name"])


def test_prod_overlay_scales_and_protects_the_services() -> None:
    prod = K8S / "overlays" / "prod"
    replicas = {r["name"]: r["count"] for r in load_yaml(prod / "kustomization.yaml")["replicas"]}
    assert replicas == PROD_REPLICAS
    budgets = {
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for pdb in of_kind("PodDisruptionBudget", prod)
    }
    assert budgets == set(SERVICES)
    (hpa,) = of_kind("HorizontalPodAutoscaler", prod)
    assert hpa["spec"]["scaleTargetRef"]["name"] == "ingest"
    assert hpa["spec"]["minReplicas"] == PROD_REPLICAS["ingest"]


def test_rewards_and_settlement_scale_on_their_consumer_lag_up_to_their_partitions() -> None:
    # Rewards workers of one group decide as one (tests/integration/test_rewards_scale_out.py): they roll
    # and scale out; no more pods than the partitions of the topic each consumes (more would idle).
    (deployment,) = [d for d in of_kind("Deployment", K8S / "base") if d["metadata"]["name"] == "rewards"]
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    deployments = {d["metadata"]["name"]: d for d in of_kind("Deployment", K8S / "base")}
    scaled = {s["metadata"]["name"]: s for s in of_kind("ScaledObject", K8S / "overlays" / "prod")}
    auths = {a["metadata"]["name"]: a for a in of_kind("TriggerAuthentication", K8S / "overlays" / "prod")}
    expected = {"rewards": (topics.READINGS, "smartcity-rewards"), "ledger": (topics.REWARDS, "ledger")}
    assert set(scaled) == set(expected)
    for name, (topic, group) in expected.items():
        spec = scaled[name]["spec"]
        assert spec["scaleTargetRef"]["name"] == name
        assert spec["minReplicaCount"] == PROD_REPLICAS[name] and spec["maxReplicaCount"] == topic.partitions
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "kafka"
        assert (trigger["metadata"]["topic"], trigger["metadata"]["consumerGroup"]) == (topic.name, group)
        # The scaler logs in as the service's own Kafka user, with the password its pods read.
        auth = auths[trigger["authenticationRef"]["name"]]["spec"]
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        (username,) = auth["env"]
        assert username["containerName"] == name and username["name"] == "KAFKA_SASL_USERNAME"
        (password,) = auth["secretTargetRef"]
        assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == password["name"]


def test_dev_overlay_runs_one_replica_each() -> None:
    replicas = {
        r["name"]: r["count"] for r in load_yaml(K8S / "overlays" / "dev" / "kustomization.yaml")["replicas"]
    }
    assert replicas == dict.fromkeys(SERVICES, 1)


def test_service_monitor_selects_every_service_metrics_port() -> None:
    (monitor,) = of_kind("ServiceMonitor", K8S / "monitoring")
    selector = monitor["spec"]["selector"]["matchLabels"]
    endpoints = {(e["port"], e.get("path", "/metrics")) for e in monitor["spec"]["endpoints"]}
    services = {s["metadata"]["name"]: s for s in of_kind("Service", K8S / "base")}
    for name in SERVICES:
        service = services[name]
        assert selector.items() <= service["metadata"]["labels"].items(), name
        port_names = {p["name"] for p in service["spec"]["ports"]}
        assert any(port in port_names and path == "/metrics" for port, path in endpoints), name


# --- Topics: Strimzi and AsyncAPI against services/common/topics.py ----------------------------------


def registry() -> dict[str, tuple[int, str]]:
    return {t.name: (t.partitions, t.cleanup_policy) for t in ALL_TOPICS}


def test_strimzi_topics_match_the_registry() -> None:
    (cluster,) = of_kind("Kafka", K8S / "kafka")
    topics = of_kind("KafkaTopic", K8S / "kafka")
    declared = {
        t["spec"]["topicName"]: (t["spec"]["partitions"], t["spec"]["config"]["cleanup.policy"])
        for t in topics
    }
    assert len(declared) == len(topics), "a topic is declared twice"
    assert declared == registry()
    for topic in topics:
        assert topic["spec"]["replicas"] == 3
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster["metadata"]["name"]


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    return load_yaml(ROOT / "schemas" / "asyncapi.yaml")


def resolve(doc: dict[str, Any], ref: str) -> Any:
    """Resolve a local JSON pointer (``#/a/b``) in `doc`; KeyError if it points nowhere."""
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def resolve_file(ref: str) -> Any:
    """Resolve a ``file.json#/pointer`` reference relative to schemas/; KeyError if it points nowhere."""
    path, _, pointer = ref.partition("#")
    schema = json.loads((ROOT / "schemas" / path).read_text())
    return resolve(schema, "#" + pointer) if pointer else schema


def collect_refs(node: Any) -> list[str]:
    """Every ``$ref`` string anywhere under `node`."""
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in collect_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in collect_refs(value)]
    return []


def channel_messages(doc: dict[str, Any], channel: dict[str, Any]) -> list[dict[str, Any]]:
    return [resolve(doc, m["$ref"]) if "$ref" in m else m for m in channel["messages"].values()]


def channel_protocols(doc: dict[str, Any], channel: dict[str, Any]) -> set[str]:
    """The protocols of the servers a channel is on (AsyncAPI 3: no `servers` means every server)."""
    refs = [server["$ref"] for server in channel.get("servers", [])]
    servers = [resolve(doc, ref) for ref in refs] if refs else list(doc["servers"].values())
    return {server["protocol"] for server in servers}


def channels_on(doc: dict[str, Any], protocol: str) -> list[dict[str, Any]]:
    return [c for c in doc["channels"].values() if channel_protocols(doc, c) == {protocol}]


def test_asyncapi_channels_match_the_registry(asyncapi: dict[str, Any]) -> None:
    assert str(asyncapi["asyncapi"]).startswith("3.0")
    for name, channel in asyncapi["channels"].items():
        assert len(channel_protocols(asyncapi, channel)) == 1, f"{name} must name its servers (Kafka or MQTT)"
    channels = channels_on(asyncapi, "kafka")
    declared = {
        c["address"]: (
            c["bindings"]["kafka"]["partitions"],
            *c["bindings"]["kafka"]["topicConfiguration"]["cleanup.policy"],
        )
        for c in channels
    }
    assert len(declared) == len(channels), "a topic is declared twice"
    assert declared == registry()


def test_asyncapi_messages_carry_the_topic_schema_key_and_cloudevents_headers(
    asyncapi: dict[str, Any],
) -> None:
    by_address = {c["address"]: c for c in asyncapi["channels"].values()}
    ce_headers = {name for name, _ in cloudevent_headers("type", "source")}
    for topic in ALL_TOPICS:
        (message,) = channel_messages(asyncapi, by_address[topic.name])
        payload = message["payload"]
        ref = payload.get("schema", payload)["$ref"]
        assert (ROOT / "schemas" / ref).resolve() == (ROOT / "schemas" / topic.schema).resolve(), topic.name
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
        headers = message["headers"]
        headers = resolve(asyncapi, headers["$ref"]) if "$ref" in headers else headers
        expected = ce_headers | ({attestation.HEADER} if topic.attested else set())
        assert set(headers["required"]) == expected == set(headers["properties"]), topic.name


def test_asyncapi_schema_refs_point_to_existing_files(asyncapi: dict[str, Any]) -> None:
    refs = collect_refs(asyncapi)
    files = [ref for ref in refs if not ref.startswith("#")]
    assert files
    for ref in refs:
        if ref.startswith("#"):
            resolve(asyncapi, ref)
        else:
            assert (ROOT / "schemas" / ref.split("#")[0]).is_file(), ref


def test_asyncapi_operations_name_services_and_each_topic_has_one_producer(asyncapi: dict[str, Any]) -> None:
    senders: dict[str, set[str]] = {}
    tagged: set[str] = set()
    for op_id, operation in asyncapi["operations"].items():
        assert operation["action"] in {"send", "receive"}, op_id
        channel = resolve(asyncapi, operation["channel"]["$ref"])
        for message in operation["messages"]:
            assert message["$ref"].startswith(operation["channel"]["$ref"] + "/messages/"), op_id
            resolve(asyncapi, message["$ref"])
        services = {tag["name"] for tag in operation["tags"]}
        tagged |= services
        if operation["action"] == "send":
            senders.setdefault(channel["address"], set()).update(services)
    # The services with a Kafka user of their own; the portal reads city.zone-stats.v1 as the analysts.
    assert set(topics.SERVICES) <= tagged
    for topic in PRIMARY_TOPICS:
        assert len(senders.get(topic.name, set())) == 1, f"{topic.name} producers: {senders.get(topic.name)}"


def test_asyncapi_mqtt_channels_describe_the_ingest_bridge(asyncapi: dict[str, Any]) -> None:
    channels = {c["address"]: c for c in channels_on(asyncapi, "mqtt")}
    assert set(channels) == {READINGS_TOPIC, ACKS_TOPIC}
    for address, channel in channels.items():
        assert set(channel["parameters"]) == {"device_id"}, address
        (message,) = channel_messages(asyncapi, channel)
        refs = collect_refs(message["payload"])
        assert refs, address
        for ref in refs:
            schema = resolve_file(ref)  # KeyError if the pointer points nowhere
            assert schema.get("type") == "object", ref
            if ref.endswith(".json"):
                schemas.validator(ref)  # raises if the schema itself is invalid

    readings = channel_messages(asyncapi, channels[READINGS_TOPIC])[0]["payload"]
    assert set(collect_refs(readings)) == {"./defs.v1.json#/$defs/reading"}

    # The ack schema takes what the bridge sends, and the documented examples.
    (acks,) = channel_messages(asyncapi, channels[ACKS_TOPIC])
    ack_schema = acks["payload"]["$ref"].removeprefix("./")
    sent = [
        ack({"seq": 7}, None),
        ack({"seq": 7}, Rejection(Reason.DUPLICATE, "seq 7 <= 7")),
        ack(None, None),
    ]
    for payload in [*sent, *(example["payload"] for example in acks["examples"])]:
        schemas.validate_against(ack_schema, payload)
    with pytest.raises(schemas.SchemaError):
        schemas.validate_against(ack_schema, {"seq": 7, "status": "retry", "reason": "unavailable"})

    ingest = {
        (operation["action"], resolve(asyncapi, operation["channel"]["$ref"])["address"])
        for operation in asyncapi["operations"].values()
        if {"name": "ingest"} in operation["tags"]
    }
    assert {("receive", READINGS_TOPIC), ("send", ACKS_TOPIC)} <= ingest


def test_kafka_users_and_compose_credentials_follow_the_registrys_acls(compose: dict[str, Any]) -> None:
    """Each principal's KafkaUser (every service's and the analysts') allows exactly what the topic registry
    says it writes and reads, and each service runs as its own user in Kubernetes and in docker-compose, but
    the portal, which (alone) runs as the analysts, its impact page reading what is theirs. The `topics` job
    gets every principal's password, to apply the same ACLs with `smartcity topics acls`."""
    users = {u["metadata"]["name"]: u for u in of_kind("KafkaUser", K8S / "kafka")}
    assert set(users) == set(topics.PRINCIPALS)
    passwords = json.loads(compose["services"]["topics"]["environment"]["SMARTCITY_KAFKA_PASSWORDS"])
    assert set(passwords) == set(topics.PRINCIPALS)
    for principal, user in users.items():
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == "smartcity"
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        declared = {
            (a["resource"]["type"], a["resource"]["name"], a["resource"]["patternType"], operation)
            for a in user["spec"]["authorization"]["acls"]
            for operation in a["operations"]
        }
        expected = {
            (acl.resource, acl.name, "prefix" if acl.pattern == "prefixed" else "literal", acl.operation)
            for acl in topics.acls(principal)
        }
        assert declared == expected, principal

    assert [name for name, user in KAFKA_USERS.items() if user == topics.ANALYST] == ["portal"]
    assert PortalSettings().impact_client_id.startswith(topics.CONSUMER_GROUPS[topics.ANALYST])
    in_k8s: dict[str, str] = {}
    for name, deployment in service_deployments().items():
        env = {e["name"]: e for e in container_of(deployment).get("env", [])}
        in_k8s[name] = env["KAFKA_SASL_USERNAME"]["value"]
        # Its password from the Secret Strimzi's User Operator keeps for that user.
        ref = env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == (in_k8s[name], "password"), name
    assert in_k8s == KAFKA_USERS
    in_compose: dict[str, str] = {}
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        if name != "topics" and "KAFKA_SASL_USERNAME" in env:  # `topics` runs as the broker's administrator
            in_compose[name] = env["KAFKA_SASL_USERNAME"]
            # The same password as the one the `topics` job creates the user with.
            assert env["KAFKA_SASL_PASSWORD"] == passwords[in_compose[name]], name
    assert in_compose == KAFKA_USERS
    (kafka,) = of_kind("Kafka", K8S / "kafka")
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    assert all(
        listener["authentication"]["type"] == "scram-sha-512"
        for listener in kafka["spec"]["kafka"]["listeners"]
    )
    assert compose["services"]["kafka"]["environment"]["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"


def test_every_topic_has_a_writer_and_each_service_writes_only_its_own() -> None:
    for topic in topics.ALL_TOPICS:
        assert topic.writers, topic.name
        assert set(topic.writers) | set(topic.readers) <= set(topics.SERVICES)
    writes = {s: {a.name for a in topics.acls(s) if a.operation == "Write"} for s in topics.SERVICES}
    assert writes["ingest"] == {
        "city.readings.v1",
        "city.consents.dlq.v1",
        "city.bindings.dlq.v1",
        "city.reward-decisions.dlq.v1",
    }
    reads = {
        s: {a.name for a in topics.acls(s) if a.operation == "Read" and a.resource == "topic"}
        for s in topics.SERVICES
    }
    # Ingest keeps each person's reward decisions for their signed reads.
    assert reads["ingest"] == {"city.consents.v1", "city.bindings.v1", "city.reward-decisions.v1"}
    assert writes["directory"] == {"city.merchants.v1"}
    assert "city.rewards.v1" not in writes["ingest"] | writes["ledger"] | writes["directory"]
