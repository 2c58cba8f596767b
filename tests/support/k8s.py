"""The Kubernetes manifests as the cluster gets them (`kubectl kustomize`), and what a container of them sees."""

from __future__ import annotations

import base64
import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"


def kubectl() -> str:
    """The kubectl command, or the calling test is skipped (the machine image ships it)."""
    found = shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl is not installed")
    return found


@functools.cache
def _render(path: Path) -> tuple[dict[str, Any], ...]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def kustomize(path: Path) -> list[dict[str, Any]]:
    """Every object `kubectl kustomize path` renders (cached: each overlay renders once per run)."""
    return list(_render(path.resolve()))


def objects_of(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """The objects of `kind`, by name."""
    return {doc["metadata"]["name"]: doc for doc in objects if doc["kind"] == kind}


def secret_values(secret: dict[str, Any]) -> dict[str, str]:
    """A Secret's values, from stringData and (base64) data alike."""
    values = {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
    return {**values, **(secret.get("stringData") or {})}


def container_env(
    objects: list[dict[str, Any]], workload: dict[str, Any], *, without_secrets: bool = False
) -> dict[str, str]:
    """The environment the (single) container of `workload` starts with: its ConfigMaps' data, then its own
    env, secretKeyRefs resolved against the Secrets among `objects`. An optional reference to a Secret that is
    not there (Strimzi's Kafka user passwords) is left unset, as the kubelet does; `without_secrets` leaves
    every secretKeyRef unset (the prod overlay renders no Secret: it is made out of band)."""
    configmaps = objects_of(objects, "ConfigMap")
    secrets = {name: secret_values(doc) for name, doc in objects_of(objects, "Secret").items()}
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        if without_secrets:
            continue
        if ref["name"] in secrets:
            env[entry["name"]] = secrets[ref["name"]][ref["key"]]
        else:
            assert ref.get("optional"), f"{workload['metadata']['name']}: {ref} points at no Secret"
    return env
