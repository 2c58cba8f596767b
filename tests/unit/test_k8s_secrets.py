"""The keys a Kubernetes deployment starts with: the dev overlay's, and those `smartcity keys k8s-secret` makes
for production. Each service loads them from the environment its pod gets, exactly as it does at start-up, so a
placeholder or a malformed key fails here rather than in a crash-looping pod (identity's SecretKeyError)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from nacl.secret import SecretBox
from typer.testing import CliRunner

from services.cli import CONFIG_PATCH, SECRET_ENV, SERVICE_KEY_SECRETS, app
from services.common import db, didkey, roles
from services.common.keyfiles import parse_secret
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.directory.settings import DirectorySettings
from services.identity import keys as identity_keys
from services.identity.settings import IdentitySettings
from services.ingest.settings import IngestSettings
from services.ledger.keys import bootstrap_authority, load_signing_key
from services.ledger.settings import LedgerSettings
from services.portal.settings import PortalSettings
from services.rewards.settings import RewardsSettings
from tests.support.k8s import K8S, container_env, kubectl, kustomize, objects_of, secret_values

PLACEHOLDER = "CHANGE-ME"
SECRET = "smartcity-secrets"
PREFIXES = (
    "KAFKA_",
    "DATABASE_",
    "SMARTCITY_",
    "INGEST_",
    "REWARDS_",
    "LEDGER_",
    "IDENTITY_",
    "DIRECTORY_",
    "PORTAL_",
)
"""The environment the settings read: cleared before each pod's is set, so this machine's cannot leak in."""


def _dids(values: list[str]) -> None:
    for did in values:
        didkey.decode(did)


def _ingest(data_dir: Path) -> None:
    settings = IngestSettings()
    roles.service_key(settings.attestor_key, data_dir, roles.Role.INGEST_ATTESTOR)
    assert settings.operators and settings.binding_issuers
    _dids([*settings.operators, *settings.binding_issuers])


def _rewards(data_dir: Path) -> None:
    settings = RewardsSettings()
    roles.service_key(settings.oracle_key, data_dir, roles.Role.REWARDS_ORACLE)
    assert settings.ingest_attestors
    _dids(settings.ingest_attestors)


def _ledger(data_dir: Path) -> None:
    settings = LedgerSettings()
    load_signing_key(settings, data_dir)
    assert settings.root_key is not None, (
        "LEDGER_ROOT_KEY unset: the ledger would bootstrap a development root"
    )
    root, seeded = bootstrap_authority(settings, data_dir)
    for role, dids in seeded.items():
        roles.Role(role)
        _dids(dids)
    assert settings.balance_readers
    _dids([root, *settings.balance_readers])


def _identity(data_dir: Path) -> None:
    settings = IdentitySettings()
    identity_keys.city_keypair(settings, data_dir)
    SecretBox(identity_keys.wallet_key(settings, data_dir))


def _directory(data_dir: Path) -> None:
    settings = DirectorySettings()
    roles.service_key(settings.publisher_key, data_dir, roles.Role.MERCHANT_VERIFIER)


def _portal(data_dir: Path) -> None:
    PortalSettings()


STARTS: dict[str, Callable[[Path], None]] = {
    "ingest": _ingest,
    "rewards": _rewards,
    "ledger": _ledger,
    "identity": _identity,
    "directory": _directory,
    "portal": _portal,
}
"""Per service, what its start-up does with its settings and keys (its app's lifespan)."""


def check_pods_start(objects: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every service Deployment of `objects` loads its settings and keys from its pod's environment, takes
    every key from it (none is generated into the data dir, as a development run would) and, with a database,
    gets a PostgreSQL server URL."""
    deployments = objects_of(objects, "Deployment")
    for name, start in STARTS.items():
        env = container_env(objects, deployments[name])
        for variable in [v for v in os.environ if v.startswith(PREFIXES)]:
            monkeypatch.delenv(variable)
        for variable, value in env.items():
            monkeypatch.setenv(variable, value)
        data_dir = tmp_path / name
        data_dir.mkdir(parents=True)
        monkeypatch.setenv("SMARTCITY_DATA_DIR", str(data_dir))
        assert not any(PLACEHOLDER in value for value in env.values()), (name, env)
        start(data_dir)
        assert not list(data_dir.iterdir()), f"{name} generated keys: its Secret lacks them"
        if "DATABASE_URL" in env:
            server = db.server_url(PlatformSettings())
            assert db.service_url(server, "smartcity_x").get_backend_name() == "postgresql"


def check_public_keys_match(secret: dict[str, str], config: dict[str, str]) -> None:
    """The ConfigMap names the did:keys of the Secret's seeds, each where the services look for it."""
    did = {
        name: Keypair.from_seed(parse_secret(secret[name], name)).did for name in SERVICE_KEY_SECRETS.values()
    }
    genesis = json.loads(config["LEDGER_GENESIS_ROLES"])
    assert genesis == {
        role.value: [did[SERVICE_KEY_SECRETS[key]]] for role, key in roles.SERVICE_KEYS.items()
    }
    assert json.loads(config["REWARDS_INGEST_ATTESTORS"]) == [did["INGEST_ATTESTOR_KEY"]]
    assert json.loads(config["INGEST_BINDING_ISSUERS"]) == [did["IDENTITY_CITY_KEY"]]
    assert json.loads(config["LEDGER_BALANCE_READERS"]) == [did["IDENTITY_CITY_KEY"]]


def base_secret_keys() -> set[str]:
    (secret,) = [doc for doc in yaml.safe_load_all((K8S / "base" / "secret.yaml").read_text()) if doc]
    return set(secret["stringData"])


def placeholder_settings() -> set[str]:
    """The ConfigMap settings the base leaves for the deployment to set."""
    config = yaml.safe_load((K8S / "base" / "config.yaml").read_text())
    return {name for name, value in config["data"].items() if PLACEHOLDER in value}


def test_the_services_read_every_key_of_the_secret_and_only_those() -> None:
    objects = kustomize(K8S / "overlays" / "prod")
    read = {
        env["valueFrom"]["secretKeyRef"]["key"]
        for kind in ("Deployment", "Job")
        for workload in objects_of(objects, kind).values()
        for env in workload["spec"]["template"]["spec"]["containers"][0].get("env", [])
        if env.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == SECRET
    }
    assert read == base_secret_keys()


def test_dev_overlay_keys_start_every_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    objects = kustomize(K8S / "overlays" / "dev")
    (secret,) = objects_of(objects, "Secret").values()
    assert set(secret["stringData"]) == base_secret_keys()
    (config,) = objects_of(objects, "ConfigMap").values()
    assert not [name for name, value in config["data"].items() if PLACEHOLDER in value]
    check_public_keys_match(secret["stringData"], config["data"])
    check_pods_start(objects, tmp_path, monkeypatch)


def test_dev_keys_are_the_documented_public_development_seeds() -> None:
    """The dev overlay says which bytes each key is: anyone can make them, which is what marks them unsafe."""
    secret = yaml.safe_load((K8S / "overlays" / "dev" / "secret.yaml").read_text())
    comment = (K8S / "overlays" / "dev" / "secret.yaml").read_text().split("apiVersion:")[0]
    for name, value in secret["stringData"].items():
        if name == "DATABASE_URL":
            continue
        first = parse_secret(value, name)[0]
        assert parse_secret(value, name) == bytes(range(first, first + 32)), name
        assert re.search(rf"{name} 0x{first:02x}\.\.0x{first + 31:02x}", comment), name


def test_base_placeholders_make_the_ledger_refuse_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Applying the prod overlay without the keys' config patch fails loudly, not with a development root."""
    monkeypatch.setenv("LEDGER_ROOT_KEY", PLACEHOLDER)
    with pytest.raises(ValueError, match="not an Ed25519 did:key"):
        LedgerSettings()


def test_a_placeholder_oracle_makes_ingest_refuse_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a consumer sending every reward decision to the DLQ."""
    monkeypatch.setenv("INGEST_REWARDS_ORACLES", f'["{PLACEHOLDER}"]')
    with pytest.raises(ValueError, match="not a did:key"):
        IngestSettings()


def production_instructions() -> dict[str, str]:
    """Where the production Secret is explained: base/secret.yaml's comment and the README's step."""
    readme = (K8S / "README.md").read_text()
    step = readme[readme.index("## Production") :]
    step = step[step.index("2. ") : step.index("3. ")]
    comment = (K8S / "base" / "secret.yaml").read_text().split("apiVersion:")[0]
    return {"k8s/README.md": step, "k8s/base/secret.yaml": comment}


@pytest.mark.parametrize("where", production_instructions())
def test_production_instructions_name_every_key_and_the_command(where: str) -> None:
    text = production_instructions()[where]
    for key in base_secret_keys():
        assert key in text, f"{where} does not say what {key} is"
    assert "smartcity keys k8s-secret --out smartcity-keys" in text, where
    command = (
        f"kubectl -n smartcity create secret generic {SECRET} --from-env-file=smartcity-keys/{SECRET_ENV}"
    )
    assert command in text, where
    assert CONFIG_PATCH in text, where


def test_readme_says_which_settings_the_config_patch_sets() -> None:
    step = production_instructions()["k8s/README.md"]
    for setting in placeholder_settings():
        assert setting in step, setting


def test_keys_command_makes_a_secret_and_config_every_service_starts_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented production path, end to end: the command, `kubectl create secret --from-env-file` (client
    side), the config patch on the prod overlay; then every service starts with what the cluster would hold."""
    out = tmp_path / "smartcity-keys"
    database = "postgresql://smartcity:s3cret@db.internal:5432/postgres"
    result = CliRunner().invoke(app, ["keys", "k8s-secret", "--out", str(out), "--database-url", database])
    assert result.exit_code == 0, result.output
    for private in (SECRET_ENV, "root.key", "operator.key"):
        assert (out / private).stat().st_mode & 0o077 == 0, private

    create = ["create", "secret", "generic", SECRET, f"--from-env-file={out / SECRET_ENV}"]
    created = subprocess.run(
        [kubectl(), *create, "--dry-run=client", "-o", "yaml"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / CONFIG_PATCH).write_text((out / CONFIG_PATCH).read_text())
    (overlay / "secret.yaml").write_text(created)
    prod = os.path.relpath(K8S / "overlays" / "prod", overlay)
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [prod, "secret.yaml"], "patches": [{"path": CONFIG_PATCH}]})
    )
    objects = kustomize(overlay)

    (secret,) = objects_of(objects, "Secret").values()
    held = secret_values(secret)
    assert set(held) == base_secret_keys()
    assert held["DATABASE_URL"] == database
    (config,) = objects_of(objects, "ConfigMap").values()
    patched = yaml.safe_load((out / CONFIG_PATCH).read_text())["data"]
    assert set(patched) == placeholder_settings()
    check_public_keys_match(held, config["data"])
    root = Keypair.from_seed(parse_secret((out / "root.key").read_text(), "root.key"))
    operator = Keypair.from_seed(parse_secret((out / "operator.key").read_text(), "operator.key"))
    assert config["data"]["LEDGER_ROOT_KEY"] == root.did
    assert json.loads(config["data"]["INGEST_OPERATORS"]) == [operator.did]
    ledger = Keypair.from_seed(parse_secret(held["LEDGER_SIGNING_KEY"], "ledger"))
    assert ledger.did in result.output
    check_pods_start(objects, tmp_path / "pods", monkeypatch)


def test_keys_command_takes_existing_root_and_operators_and_never_writes_over_keys(tmp_path: Path) -> None:
    root, operators = Keypair.generate().did, [Keypair.generate().did, Keypair.generate().did]
    out = tmp_path / "keys"
    args = ["keys", "k8s-secret", "--out", str(out), "--database-url", "postgresql://u:p@h:5432/postgres"]
    args += ["--root-did", root, *(arg for did in operators for arg in ("--operator-did", did))]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in out.iterdir()) == sorted([CONFIG_PATCH, SECRET_ENV])
    config = yaml.safe_load((out / CONFIG_PATCH).read_text())["data"]
    assert (config["LEDGER_ROOT_KEY"], json.loads(config["INGEST_OPERATORS"])) == (root, operators)

    before = (out / SECRET_ENV).read_text()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2, again.output  # a usage error: OUT exists
    assert (out / SECRET_ENV).read_text() == before
    for bad in (["--root-did", "did:key:nope"], ["--database-url", "mysql://h/db"]):
        refused = CliRunner().invoke(app, [*args[:3], str(tmp_path / "other"), *args[4:], *bad])
        assert refused.exit_code == 2, bad
        assert not (tmp_path / "other").exists()
