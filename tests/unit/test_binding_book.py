"""The binding book's unbinding (pure): a signed unbinding voids the binding it names in whatever order the two
arrive, a replay of the voided binding stays void, a new binding of the wallet stands, and an unbinding not
signed by a key whose credentials bind is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common.bindings import (
    MISMATCH,
    UNBINDING_SIGNATURE,
    UNTRUSTED_UNBINDER,
    Binding,
    BindingBook,
    BindingError,
    Unbinding,
    check_unbinding_record,
    unbinding,
)
from services.common.signing import Keypair
from tests.support.bindings import checked_binding

CITY = Keypair.generate()


def unbound(wallet: Keypair, binding: Binding) -> Unbinding:
    return check_unbinding_record(unbinding(CITY, wallet.did, binding.signed, datetime.now(UTC)), [CITY.did])


def test_an_unbinding_voids_its_binding_in_either_order_and_a_new_binding_stands() -> None:
    alice, bob = Keypair.generate(), Keypair.generate()
    first, bobs = checked_binding(CITY, alice), checked_binding(CITY, bob)
    removal = unbound(alice, first)

    book = BindingBook()
    assert book.apply(first) and book.apply(bobs)
    assert book.unbind(removal)
    assert book.person_of(alice.did) is None and book.person_of(bob.did) == bobs.person
    assert not book.apply(first) and book.is_void(first)  # a replay of the voided binding
    assert book.person_of(alice.did) is None

    early = BindingBook()  # the unbinding first (a view that met them out of order)
    assert not early.unbind(removal)
    assert not early.apply(first) and early.person_of(alice.did) is None

    again = checked_binding(CITY, alice)  # a new request: another binding, which the unbinding does not name
    assert book.apply(again) and book.person_of(alice.did) == again.person
    assert not book.is_void(again)


def test_an_unbinding_by_an_untrusted_key_or_not_its_signers_is_refused() -> None:
    alice, mallory = Keypair.generate(), Keypair.generate()
    binding = checked_binding(CITY, alice)
    by_mallory = unbinding(mallory, alice.did, binding.signed, datetime.now(UTC))
    with pytest.raises(BindingError) as refused:
        check_unbinding_record(by_mallory, [CITY.did])
    assert refused.value.reason == UNTRUSTED_UNBINDER
    claimed = {**by_mallory, "unbinding": {**by_mallory["unbinding"], "issuer": CITY.did}}
    with pytest.raises(BindingError) as refused:
        check_unbinding_record(claimed, [CITY.did])
    assert refused.value.reason == UNBINDING_SIGNATURE
    genuine = unbinding(CITY, alice.did, binding.signed, datetime.now(UTC))
    with pytest.raises(BindingError) as refused:
        check_unbinding_record({**genuine, "wallet": mallory.did}, [CITY.did])
    assert refused.value.reason == MISMATCH
