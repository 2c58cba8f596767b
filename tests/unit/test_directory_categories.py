"""The fixed merchant taxonomy."""

import pytest

from services.common import schemas
from services.directory.categories import CATEGORIES, is_category


def test_the_taxonomy_is_the_agreed_one():
    assert set(CATEGORIES) == {
        "food",
        "grocery",
        "shelter",
        "health",
        "transit",
        "pharmacy",
        "clothing",
        "repair",
        "education",
        "services",
        "other",
    }
    assert all(CATEGORIES.values())


@pytest.mark.parametrize("name", sorted(CATEGORIES))
def test_every_category_is_a_valid_name_on_the_topic(name):
    assert is_category(name)
    schemas.validate_definition("name", name)


@pytest.mark.parametrize("value", ["Food", " food", "weapons", "", None, 3, ["food"]])
def test_anything_else_is_not_a_category(value):
    assert not is_category(value)
