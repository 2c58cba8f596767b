"""The synthetic city: reproducible, realistic mix, and every document passes the API's checks."""

from collections import Counter

from services.common.signing import Keypair
from services.directory import merchants, synthetic
from services.directory.categories import CATEGORIES
from services.directory.search import haversine_km

CITY = Keypair.from_seed(bytes(32))


def test_the_same_seed_gives_the_same_city():
    first = [m.registration for m in synthetic.merchants(20, 3, CITY)]
    assert first == [m.registration for m in synthetic.merchants(20, 3, CITY)]
    assert first != [m.registration for m in synthetic.merchants(20, 4, CITY)]
    assert first[5]["wallet"] == synthetic.merchant_key(3, 5).did


def test_a_realistic_mix_that_passes_the_api_checks():
    city = list(synthetic.merchants(600, 1, CITY))
    registrations = [merchants.check_registration(m.registration) for m in city]
    for item in city:
        if item.verification is not None:
            verification = merchants.check_verification(item.verification, {CITY.did})
            assert verification.registration == merchants.registration_hash(item.registration)
    chains = sum(r.chain is not None for r in registrations)
    assert 0.1 < chains / len(city) < 0.3
    assert all(r.locally_owned == (r.chain is None) for r in registrations)
    assert 0.6 < sum(m.verification is not None for m in city) / len(city) < 0.9
    assert set(Counter(r.category for r in registrations)) == set(CATEGORIES)
    assert sum(r.hours is not None for r in registrations) > 0.8 * len(city)
    centre = synthetic.CENTRE
    assert all(haversine_km(*centre, r.lat, r.lon) < 2 * synthetic.CITY_RADIUS_KM for r in registrations)
