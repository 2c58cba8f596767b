"""The fixed merchant taxonomy."""

import pytest

from services.common import schemas
from services.directory.categories import CATEGORIES, CATEGORY_TERMS, categories_for, is_category


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


def test_every_category_has_search_terms():
    assert set(CATEGORY_TERMS) == set(CATEGORIES)
    assert all(CATEGORY_TERMS.values())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("grocery", ["grocery"]),
        ("Shoes", ["clothing"]),
        ("bread, coffee", ["food"]),
        ("books", ["education"]),
    ],
)
def test_a_product_or_category_names_its_categories(text, expected):
    assert categories_for(text) == expected


def test_a_brand_is_no_category():
    assert categories_for("MegaMart") == []
