"""Search geometry and query text."""

import math

import pytest

from services.directory.search import Location, bounding_box, haversine_km, prefix_tsquery


def test_haversine_known_distances():
    assert haversine_km(52.37, 4.9, 52.37, 4.9) == 0.0
    # One degree of latitude is about 111.2 km; Amsterdam to Utrecht is about 35 km.
    assert haversine_km(52.0, 4.9, 53.0, 4.9) == pytest.approx(111.2, abs=0.1)
    assert haversine_km(52.3676, 4.9041, 52.0907, 5.1214) == pytest.approx(34.4, abs=0.5)


@pytest.mark.parametrize(("lat", "lon"), [(52.37, 4.9), (-33.9, 18.4), (78.2, 15.6), (0.0, 179.99)])
def test_the_box_holds_every_point_at_the_radius(lat, lon):
    location = Location(lat, lon, 5.0)
    min_lon, min_lat, max_lon, max_lat = bounding_box(location)
    for bearing in range(0, 360, 15):
        # A point 4.99 km away in this direction (small-distance approximation, well within the box's slack).
        dlat = 4.99 * math.cos(math.radians(bearing)) / 111.195
        dlon = 4.99 * math.sin(math.radians(bearing)) / (111.195 * math.cos(math.radians(lat + dlat)))
        plat, plon = lat + dlat, lon + dlon
        if plon > 180:
            plon -= 360
        assert haversine_km(lat, lon, plat, plon) < 5.0
        assert min_lat <= plat <= max_lat and min_lon <= plon <= max_lon, bearing


def test_the_box_widens_near_a_pole():
    assert bounding_box(Location(89.99, 10.0, 5.0))[0::2] == (-180.0, 180.0)


def test_the_query_text_becomes_prefix_terms_and_nothing_else():
    assert prefix_tsquery("Corner bak") == "corner:* & bak:*"
    assert prefix_tsquery("café", weights="A") == "café:*A"
    assert prefix_tsquery("a & !b | (c:*) 'd'") == "a:* & b:* & c:* & d:*"
    assert prefix_tsquery("!!! ---") == ""
    assert prefix_tsquery(" ".join(["w"] * 20)).count("&") == 7
