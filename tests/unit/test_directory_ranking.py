"""The local-first ranking: bounded local boost, distance and text still decide."""

import pytest

from services.directory.ranking import RankingWeights, local_signal, proximity, score

W = RankingWeights()


def test_proximity_is_one_at_the_door_one_half_at_the_half_distance_and_zero_unknown():
    assert proximity(0.0, W) == 1.0
    assert proximity(W.half_distance_km, W) == pytest.approx(0.5)
    assert proximity(100.0, W) < 0.01
    assert proximity(None, W) == 0.0


def test_the_local_signal():
    assert local_signal(True, True, W) == 1.0
    assert local_signal(True, False, W) == W.unverified_local
    assert local_signal(False, True, W) == local_signal(False, False, W) == 0.0


def test_a_verified_local_shop_beats_a_chain_at_equal_relevance_and_distance():
    local, chain = score(1.0, 0.5, True, True, W), score(1.0, 0.5, False, True, W)
    claimed = score(1.0, 0.5, True, False, W)
    assert local.total > claimed.total > chain.total
    assert local.total - chain.total == pytest.approx(W.local)


def test_a_local_shop_still_wins_when_a_little_farther_or_a_little_less_relevant():
    assert score(0.9, 0.6, True, True, W).total > score(1.0, 0.5, False, True, W).total


def test_a_much_nearer_chain_or_a_much_better_match_wins():
    assert score(1.0, 0.05, False, True, W).total > score(1.0, 6.0, True, True, W).total
    assert score(1.0, 0.4, False, True, W).total > score(0.2, 0.4, True, True, W).total


def test_the_weights_are_tunable():
    no_boost = RankingWeights(local=0.0)
    assert score(1.0, 0.5, True, True, no_boost).total == score(1.0, 0.5, False, True, no_boost).total
    parts = score(0.5, 1.0, True, True, RankingWeights(text=2.0, distance=1.0, local=0.5))
    assert (parts.text, parts.distance, parts.local) == (1.0, 0.5, 0.5)
    assert parts.as_json() == {"text": 1.0, "distance": 0.5, "local": 0.5, "total": 2.0}
