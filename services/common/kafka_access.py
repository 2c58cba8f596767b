"""Kafka access control where it is deployed: the SCRAM credentials and ACLs of each service and of the
analysts (`services.common.topics.PRINCIPALS`), from the topic registry (`services.common.topics.acls`),
applied with the broker's admin API.

``smartcity topics acls`` runs it with administrator credentials (docker-compose's ``topics`` job). On
Kubernetes the Strimzi User Operator does the same from the KafkaUser resources in ``k8s/kafka/users.yaml``,
which a unit test holds to the same registry. The embedded development broker has no ACLs: it listens on
127.0.0.1 only, and the signatures on every effect-bearing record are what protect the chain.
"""

from __future__ import annotations

from collections.abc import Mapping

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from services.common.kafka import client_security
from services.common.topics import PRINCIPALS, Acl, acls

SCRAM_ITERATIONS = 8192
_RESOURCES = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
_PATTERNS = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
_OPERATIONS = {"Write": AclOperation.WRITE, "Read": AclOperation.READ, "Describe": AclOperation.DESCRIBE}


def bindings(principal: str) -> list[AclBinding]:
    """The broker's ACL bindings allowing ``User:<principal>`` what the registry says, from any host."""
    return [_binding(principal, acl) for acl in acls(principal)]


def _binding(principal: str, acl: Acl) -> AclBinding:
    return AclBinding(
        _RESOURCES[acl.resource],
        acl.name,
        _PATTERNS[acl.pattern],
        f"User:{principal}",
        "*",
        _OPERATIONS[acl.operation],
        AclPermissionType.ALLOW,
    )


def apply(bootstrap_servers: str, passwords: Mapping[str, str], timeout_s: float = 30.0) -> list[str]:
    """Create (or update) the SCRAM-SHA-512 credentials and ACLs of each principal (every service and the
    analysts); returns what it did.

    Raises `ValueError` naming a principal without a password, and the admin client's errors as they come.
    """
    missing = [p for p in PRINCIPALS if not passwords.get(p)]
    if missing:
        raise ValueError(f"no Kafka password for {', '.join(missing)}")
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, **client_security()})
    upserts = [
        UserScramCredentialUpsertion(
            principal,
            ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS),
            passwords[principal].encode(),
        )
        for principal in PRINCIPALS
    ]
    for future in admin.alter_user_scram_credentials(upserts, request_timeout=timeout_s).values():
        future.result()
    done = [f"User:{p} SCRAM-SHA-512" for p in PRINCIPALS]
    all_bindings = [binding for principal in PRINCIPALS for binding in bindings(principal)]
    for binding, future in admin.create_acls(all_bindings, request_timeout=timeout_s).items():
        future.result()
        done.append(f"{binding.principal} {binding.operation.name} {binding.restype.name}:{binding.name}")
    return done
