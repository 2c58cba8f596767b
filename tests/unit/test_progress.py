from services.stack import progress

METRICS = """# HELP smartcity_ingest_readings_accepted_total Readings accepted.
# TYPE smartcity_ingest_readings_accepted_total counter
smartcity_ingest_readings_accepted_total{kind="noise"} 10.0
smartcity_ingest_readings_accepted_total{kind="air_quality"} 5.0
smartcity_ingest_readings_accepted_created{kind="noise"} 1.7e9
# HELP smartcity_ingest_readings_rejected_total Readings rejected.
# TYPE smartcity_ingest_readings_rejected_total counter
smartcity_ingest_readings_rejected_total{reason="bad_signature"} 2.0
"""


def test_counter_total_sums_labels_and_ignores_created():
    assert progress.counter_total(METRICS, progress.READINGS_ACCEPTED) == 15
    assert progress.counter_total(METRICS, progress.READINGS_REJECTED) == 2
    assert progress.counter_total(METRICS, "smartcity_missing") == 0
    assert progress.counter_total("", progress.READINGS_ACCEPTED) == 0


def test_plain_line_formats_money_from_micro_units():
    snap = progress.Snapshot(at=0, readings_accepted=15, height=2, tree_size=40)
    snap.top_wallets = [("did:key:z6MkexampleWalletWithALongName", 1_500_000)]
    line = progress.plain_line(snap, 12)
    assert "blocks=3" in line and "tree_size=40" in line
    assert "1.500000 CITY" in line
