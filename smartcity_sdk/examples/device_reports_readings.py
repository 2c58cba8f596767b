"""A citizen's air-quality sensor: registered to their wallet, consented, its signed readings sent, and what
each reading earned read back.

1. a wallet and a device key are made, the wallet registered with identity;
2. the wallet grants the city the consent its readings need (the kind's category, ``/v1/kinds``);
3. the device is registered to the wallet (signed by both keys) and sends signed readings;
4. the wallet lists its devices and reads the rewards worker's decision on each reading (signed reads).

    python smartcity_sdk/examples/device_reports_readings.py [--readings 3]

A wallet earns only once bound to a person by a resident credential (the city's policy); until then each
decision says why it paid nothing (``unverified-person``).
"""

from __future__ import annotations

import time

from smartcity_sdk import IdentityClient, IngestClient, Keypair
from smartcity_sdk.examples.common import fail, parser, run
from smartcity_sdk.ingest import sign_reading

KIND, ZONE = "air_quality", "centre"
DECISIONS_WAIT_S = 30.0


def main() -> None:
    arguments = parser(__doc__.splitlines()[0], "ingest", "identity")
    arguments.add_argument("--readings", type=int, default=3, help="how many readings the device sends")
    args = arguments.parse_args()
    wallet, device = Keypair.generate(), Keypair.generate()

    with IngestClient(args.ingest) as ingest, IdentityClient(args.identity) as identity:
        identity.register(wallet)
        print(f"wallet: {wallet.did} registered")
        category = next(k["consent_category"] for k in ingest.kinds()["kinds"] if k["kind"] == KIND)
        identity.grant_consent(wallet, category, purpose="air quality map and rewards")
        print(f"consent: {category} granted to the city")

        registered = ingest.register_device(wallet, device, kind=KIND, zone=ZONE)
        print(
            f"device: {registered['device_id']} ({registered['kind']} in {registered['zone']}) {registered['status']}"
        )

        readings = [
            sign_reading(
                device, seq=seq, kind=KIND, zone=ZONE, values={"pm2_5": 8.0 + seq, "pm10": 15.0, "no2": 20.0}
            )
            for seq in range(1, args.readings + 1)
        ]
        # Ingest follows consents from a topic: a reading sent before it saw the grant is refused (no_consent)
        # and may be sent again as it is, its sequence number still unused.
        deadline = time.monotonic() + DECISIONS_WAIT_S
        pending, accepted = readings, 0
        while pending:
            results = ingest.submit_readings(pending)["results"]
            accepted += sum(result["status"] == "accepted" for result in results)
            refused = [
                (reading, str(result["reason"]))
                for reading, result in zip(pending, results, strict=True)
                if result["status"] == "rejected"
            ]
            if any(not reason.startswith("no_consent") for _, reason in refused):
                fail(f"readings refused: {sorted(reason for _, reason in refused)}")
            if refused and time.monotonic() > deadline:
                fail(f"the consent was not seen by ingest within {DECISIONS_WAIT_S} s")
            pending = [reading for reading, _ in refused]
            time.sleep(0.5 if pending else 0)
        print(f"readings: {accepted} accepted")

        mine = ingest.my_devices(wallet)["devices"]
        print(f"my devices: {[d['device_id'] for d in mine]}")
        if [d["device_id"] for d in mine] != [device.did]:
            fail(f"the wallet's devices are {mine}, expected only {device.did}")

        while len(decisions := ingest.my_decisions(wallet)["decisions"]) < len(readings):
            if time.monotonic() > deadline:
                fail(f"{len(decisions)} of {len(readings)} readings decided within {DECISIONS_WAIT_S} s")
            time.sleep(0.5)
        for decision in reversed(decisions):
            earned = sum(reward["amount"] for reward in decision["rewards"])
            why = ", ".join(reason["code"] for reason in decision["reasons"]) or "paid in full"
            print(
                f"decision: reading {decision['reading_id'][:12]}… {decision['outcome']}, {earned} micro-CITY ({why})"
            )


if __name__ == "__main__":
    run(main)
