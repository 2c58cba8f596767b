"""Ingest obeys consent, on a real broker and PostgreSQL with two ingest instances: a reading whose owner has
not granted the city its kind's category is rejected with no_consent (spending no sequence number), a grant
lets it through, and a revocation on city.consents.v1 takes effect on both instances within 5 seconds."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import httpx

from services.common.consents import check_consent, record_key
from services.common.kafka import KafkaProducer, OutgoingRecord
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.common.topics import CONSENTS, READINGS
from services.ingest.app import create_app
from services.ingest.checks import Reason
from tests.support import consents, ingest
from tests.support.asgi import running
from tests.support.topics import device_of, end_offsets, keypairs_on_one_partition, records_published_during


async def _verdict(client: httpx.AsyncClient, reading: dict) -> str:
    """The reading's verdict: "accepted", or the reason it was rejected (without its detail)."""
    response = await client.post("/v1/readings", json={"readings": [reading]})
    assert response.status_code == 202, response.text
    [result] = response.json()["results"]
    return result["reason"].split(":")[0] if result["reason"] else result["status"]


async def test_no_consent_then_grant_then_revocation_within_5s_on_two_instances(
    platform_settings: PlatformSettings,
):
    owner, device = Keypair.generate(), Keypair.generate()  # a noise sensor: "environment" data
    bootstrap = platform_settings.bootstrap_servers
    apps = [create_app(platform_settings), create_app(platform_settings)]
    refused_before = ingest.rejected(Reason.NO_CONSENT)
    start = await end_offsets(bootstrap, READINGS)
    async with running(apps[0]) as a, running(apps[1]) as b:
        assert (await a.post("/v1/devices", json=ingest.registration(owner, device))).status_code == 201

        # Never granted: both instances refuse, and say why.
        assert await _verdict(a, ingest.reading(device, 1)) == "no_consent"
        assert await _verdict(b, ingest.reading(device, 1)) == "no_consent"
        # Granting another category, or "environment" to someone else, is not granting it to the city.
        await consents.publish(bootstrap, owner, ["mobility"], seen_by=consents.views(apps))
        assert await _verdict(b, ingest.reading(device, 1)) == "no_consent"
        assert ingest.rejected(Reason.NO_CONSENT) - refused_before == 3

        # Granted: accepted on either instance; the refusals spent no sequence number, so seq 1 goes through.
        await consents.grant(bootstrap, owner, *apps)
        assert await _verdict(a, ingest.reading(device, 1)) == "accepted"
        assert await _verdict(b, ingest.reading(device, 2)) == "accepted"

        # Revoked: within 5 s of publishing the revocation, each instance refuses the owner's readings.
        accepted, seq = [1, 2], 2
        revoked_at = time.monotonic()
        await consents.publish(bootstrap, owner, ["environment"], action="revoke")
        for client in (a, b):
            while True:
                seq += 1
                verdict = await _verdict(client, ingest.reading(device, seq))
                if verdict == "no_consent":
                    break
                assert verdict == "accepted"
                accepted.append(seq)
                assert time.monotonic() - revoked_at < consents.REVOCATION_BOUND_S, "revocation not obeyed"
        for client in (a, b):  # and they keep refusing them
            seq += 1
            assert await _verdict(client, ingest.reading(device, seq)) == "no_consent"
        metrics = (await a.get("/metrics")).text

    assert 'smartcity_ingest_readings_rejected_total{reason="no_consent"}' in metrics
    published = await records_published_during(bootstrap, READINGS, start)
    seqs = sorted(json.loads(m.value())["reading"]["seq"] for m in published if device_of(m) == device.did)
    # Exactly the readings answered "accepted" reached the topic; none refused for want of consent did.
    assert seqs == accepted


async def test_a_replayed_grant_after_its_revocation_changes_nothing(platform_settings: PlatformSettings):
    """The attack: keep a copy of the grant record, and publish it again once the owner revoked it."""
    # The neighbour's grant is the marker after the replay: it must share the replay's partition.
    owner, neighbour = keypairs_on_one_partition(
        CONSENTS,
        [
            lambda person: record_key(person.did, "environment"),
            lambda person: record_key(person.did, "mobility"),
        ],
    )
    device, other_device = Keypair.generate(), Keypair.generate()
    bootstrap = platform_settings.bootstrap_servers
    app = create_app(platform_settings)
    async with running(app) as client:
        for person, sensor in ((owner, device), (neighbour, other_device)):
            response = await client.post("/v1/devices", json=ingest.registration(person, sensor))
            assert response.status_code == 201, response.text
        grant = consents.consent(owner, "environment")
        grant_record = check_consent(grant).record(datetime.now(UTC))
        producer = KafkaProducer(bootstrap, client_id="test-consent-replay")
        try:
            await producer.send(OutgoingRecord(CONSENTS, check_consent(grant).key, grant_record))
            await consents.grant(bootstrap, neighbour, app)
            await consents.within(
                consents.SETUP_BOUND_S, lambda: app.state.consents.allows(owner.did, "environment")
            )
            assert await _verdict(client, ingest.reading(device, 1)) == "accepted"
            await asyncio.sleep(0.01)  # the revocation is signed after the grant
            await consents.publish(
                bootstrap, owner, ["environment"], action="revoke", seen_by=consents.views([app])
            )
            assert await _verdict(client, ingest.reading(device, 2)) == "no_consent"
            # The replay arrives after the revocation, and is the later record on the topic.
            await producer.send(OutgoingRecord(CONSENTS, check_consent(grant).key, grant_record))
            # A marker published after the replay: once the view has folded it, it has folded the replay.
            await consents.publish(bootstrap, neighbour, ["mobility"], seen_by=consents.views([app]))
        finally:
            await asyncio.to_thread(producer.close)
        assert not app.state.consents.allows(owner.did, "environment")
        assert await _verdict(client, ingest.reading(device, 3)) == "no_consent"
        # The good traffic beside it still flows.
        assert await _verdict(client, ingest.reading(other_device, 1)) == "accepted"
        metrics = (await client.get("/metrics")).text
    assert 'smartcity_consent_records_total{client="ingest",outcome="superseded"}' in metrics
