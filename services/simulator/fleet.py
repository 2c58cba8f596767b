"""A simulated fleet of citizens' devices (pure): deterministic keys, signed registrations, the owners'
signed consent grants, and plausible signed readings of several kinds; with an operator key, the city devices
(recycling stations, transit gates, smart meters...) whose receipts attest the citizens' behaviour readings."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.common import kinds, receipts
from services.common.consents import CITY
from services.common.events import rfc3339
from services.common.signing import Keypair
from services.ingest.devices import sign_registration

ZONES = ("old-town", "harbour", "university", "riverside", "north-park", "market", "station", "hillside")

CONSENT_PURPOSE = "rewards for sensor readings (simulated)"

ValueMaker = Callable[[random.Random], dict[str, float]]

MATERIALS = ("glass", "paper", "plastic", "metal", "textile")


def _parking(r: random.Random) -> dict[str, float]:
    capacity = r.choice((20, 50, 120, 400))
    return {"occupied": r.randint(0, capacity), "capacity": capacity}


# Plausible values for every kind of the registry (schemas/kinds/), in its units; a test holds them to it.
KINDS: dict[str, ValueMaker] = {
    "air_quality": lambda r: {
        "pm2_5": round(r.lognormvariate(2.2, 0.4), 1),
        "pm10": round(r.lognormvariate(2.9, 0.4), 1),
        "no2": round(r.lognormvariate(3.1, 0.3), 1),
    },
    "noise": lambda r: {"db_a": round(min(120.0, max(30.0, r.gauss(58, 8))), 1)},
    "traffic_count": lambda r: {"vehicles": r.randint(0, 120), "bicycles": r.randint(0, 40)},
    "parking_occupancy": _parking,
    "energy_saved": lambda r: {"kwh": round(r.uniform(0.05, 2.5), 3)},
    "water_use": lambda r: {"litres": round(r.uniform(5, 180), 1)},
    "waste_bin_fill": lambda r: {"fill_pct": round(r.uniform(0, 100), 1)},
    "recycling_dropoff": lambda r: {
        m: round(r.uniform(0.2, 8), 2) for m in r.sample(MATERIALS, r.randint(1, 2))
    },
    "bike_trip": lambda r: {"km": round(r.uniform(0.5, 12), 2)},
    "walk_trip": lambda r: {"km": round(r.uniform(0.3, 5), 2)},
    "transit_checkin": lambda r: {"passengers": r.choice((1, 1, 1, 2, 3))},
}


# Which class of city device attests each behaviour kind, as the city's policy says (attested_by in
# services/rewards/policies/city.yaml; a test holds the two together).
ATTESTING_CLASS: dict[str, str] = {
    "bike_trip": "bike_dock",
    "walk_trip": "trip_beacon",
    "transit_checkin": "transit_gate",
    "energy_saved": "smart_meter",
    "recycling_dropoff": "recycling_station",
}


def _keypair(seed: str, role: str, index: int) -> Keypair:
    return Keypair.from_seed(hashlib.sha256(f"{seed}/{role}/{index}".encode()).digest())


@dataclass(frozen=True)
class CityDevice:
    """A city device registered by an operator: it issues receipts for citizens' readings of its kind."""

    key: Keypair
    operator: Keypair
    device_class: str
    kind: str
    zone: str

    @property
    def device_id(self) -> str:
        return self.key.did

    def registration(self) -> dict[str, Any]:
        """The city device's registration, proven by the device and signed by the operator."""
        body = {
            "device_id": self.device_id,
            "owner": self.operator.did,
            "kind": self.kind,
            "zone": self.zone,
            "class": self.device_class,
        }
        return sign_registration(self.operator, self.key, body)


@dataclass
class Device:
    key: Keypair
    owner: Keypair
    kind: str
    zone: str
    seq: int = 0
    rng: random.Random = field(default_factory=random.Random)
    attester: CityDevice | None = None
    """The city device that co-signs this device's readings (behaviour kinds, when the fleet has one)."""

    @property
    def device_id(self) -> str:
        return self.key.did

    def registration(self) -> dict[str, Any]:
        """The device's registration, proven by the device and signed by its owner."""
        body = {"device_id": self.device_id, "owner": self.owner.did, "kind": self.kind, "zone": self.zone}
        return sign_registration(self.owner, self.key, body)

    def next_reading(self, now: datetime) -> dict[str, Any]:
        """The device's next reading, signed by the device, with a strictly higher sequence number."""
        self.seq += 1
        body = {
            "device_id": self.device_id,
            "seq": self.seq,
            "ts": rfc3339(now),
            "kind": self.kind,
            "zone": self.zone,
            "values": KINDS[self.kind](self.rng),
        }
        if self.attester is not None:  # the city device receipts the reading, then the device signs both
            return receipts.attested_reading(self.key, self.attester.key, self.attester.device_class, body)
        return self.key.sign(body)


def _pick(city_devices: list[CityDevice] | None, index: int) -> CityDevice | None:
    """The city device that attests citizen device number `index` (None if its kind has none)."""
    return city_devices[index % len(city_devices)] if city_devices else None


@dataclass
class Fleet:
    wallets: list[Keypair]
    devices: list[Device]
    city_devices: list[CityDevice] = field(default_factory=list)

    @classmethod
    def generate(
        cls,
        seed: str,
        wallets: int,
        devices: int,
        first_seq: int = 0,
        operator: Keypair | None = None,
        city_devices_per_kind: int = 3,
    ) -> Fleet:
        """The same seed gives the same wallets and devices (so a restart reuses them); sequence
        numbers start at `first_seq` so readings after a restart are new ones. With an `operator` key (one
        ingest trusts), `city_devices_per_kind` city devices of each behaviour kind, registered by it,
        attest the readings of that kind; without, those readings carry no receipt."""
        owners = [_keypair(seed, "wallet", i) for i in range(wallets)]
        kind_names = sorted(KINDS)
        city: dict[str, list[CityDevice]] = {}
        if operator is not None:
            for kind, device_class in sorted(ATTESTING_CLASS.items()):
                city[kind] = [
                    CityDevice(
                        key=_keypair(seed, f"city/{kind}", j),
                        operator=operator,
                        device_class=device_class,
                        kind=kind,
                        zone=ZONES[j % len(ZONES)],
                    )
                    for j in range(city_devices_per_kind)
                ]
        fleet = [
            Device(
                key=_keypair(seed, "device", i),
                owner=owners[i % wallets],
                kind=kind_names[i % len(kind_names)],
                zone=ZONES[(i // len(kind_names)) % len(ZONES)],
                seq=first_seq,
                rng=random.Random(f"{seed}/{i}"),
                attester=_pick(city.get(kind_names[i % len(kind_names)]), i),
            )
            for i in range(devices)
        ]
        return cls(owners, fleet, [d for kind in sorted(city) for d in city[kind]])

    def registrations(self) -> list[dict[str, Any]]:
        """Every registration to send ingest: the city devices' (by the operator) and the citizens'."""
        return [d.registration() for d in self.city_devices] + [d.registration() for d in self.devices]

    def consent_grants(self, now: datetime) -> list[dict[str, Any]]:
        """Each wallet's grant to the city of every consent category its devices' kinds fall under, signed
        by the wallet (ingest refuses a reading whose owner has not granted its category)."""
        categories: dict[str, set[str]] = {}
        for device in self.devices:
            categories.setdefault(device.owner.did, set()).add(kinds.category(device.kind))
        return [
            wallet.sign(
                {
                    "subject": wallet.did,
                    "category": category,
                    "grantee": CITY,
                    "action": "grant",
                    "purpose": CONSENT_PURPOSE,
                    "issued_at": rfc3339(now),
                }
            )
            for wallet in self.wallets
            for category in sorted(categories.get(wallet.did, ()))
        ]
