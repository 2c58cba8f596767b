"""The SDK's answer types (``smartcity_sdk/types.py``) say what the services answer: each TypedDict mirroring a
service's response model has that model's keys, the same ones always sent and the same ones a service may leave
out, and its nested answers mirror the model's nested models. The SDK itself never imports the services
(`tests.unit.test_sdk`); this test imports both."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any, get_args, is_typeddict

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from services.directory.api import models as directory
from services.identity.api import models as identity
from services.ingest.api import models as ingest
from services.ledger.api import circulation
from services.ledger.api import models as ledger
from services.portal import impact
from smartcity_sdk import types

MIRRORS: dict[Any, type[BaseModel]] = {
    # Ledger
    types.Checkpoint: ledger.Checkpoint,
    types.Block: ledger.Block,
    types.InclusionProof: ledger.InclusionProof,
    types.ConsistencyProof: ledger.ConsistencyProof,
    types.CurrencyTotal: ledger.CurrencyTotal,
    types.Totals: ledger.Totals,
    types.Receipt: ledger.Receipt,
    types.Account: ledger.Account,
    types.AccountTransaction: ledger.AccountTransaction,
    types.AccountTransactions: ledger.AccountTransactions,
    types.Nonce: ledger.Nonce,
    types.Memo: ledger.Memo,
    types.PolicyReceipt: ledger.PolicyReceipt,
    types.TopAccount: ledger.TopAccount,
    types.TopAccounts: ledger.TopAccounts,
    types.AccountBalances: ledger.AccountBalances,
    types.Balances: ledger.Balances,
    types.Authority: ledger.Authority,
    types.Disclosure: ledger.Disclosure,
    types.LeafDisclosure: ledger.LeafDisclosure,
    types.Disclosures: ledger.Disclosures,
    types.LeafMemo: ledger.LeafMemo,
    types.Memos: ledger.Memos,
    types.LedgerErasure: ledger.Erasure,
    types.CirculationMonth: circulation.CirculationMonth,
    types.Circulation: circulation.Circulation,
    # Identity
    types.Identity: identity.Identity,
    types.ConsentChange: identity.ConsentChange,
    types.ConsentState: identity.ConsentState,
    types.Consents: identity.Consents,
    types.Notice: identity.InboxNotice,
    types.Inbox: identity.Inbox,
    types.VerifiedPresentation: identity.VerifiedPresentation,
    types.Erasure: identity.Erasure,
    types.Statement: identity.Statement,
    types.AidHolder: identity.AidHolder,
    types.Resolution: identity.Resolution,
    types.ExportedWallet: identity.ExportedWallet,
    types.Presentation: identity.Presentation,
    types.Credential: identity.Credential,
    types.CredentialRevocation: identity.Revocation,
    types.ReceiptProof: identity.ReceiptProof,
    types.Binding: identity.Binding,
    types.BindingAnswer: identity.BindingAnswer,
    types.NoticePosted: identity.NoticePosted,
    types.ServiceRecorded: identity.ServiceRecorded,
    types.ServiceCount: identity.ServiceCount,
    types.ServiceCounts: identity.ServiceCounts,
    types.PinReset: identity.PinReset,
    # Directory
    types.Facts: directory.Facts,
    types.Merchant: directory.Merchant,
    types.MerchantPage: directory.MerchantPage,
    types.Score: directory.Score,
    types.SearchHit: directory.SearchHit,
    types.SearchResults: directory.SearchResults,
    types.Alternatives: directory.Alternatives,
    types.Categories: directory.Categories,
    # Ingest
    types.Device: ingest.Device,
    types.Devices: ingest.Devices,
    types.ReadingResult: ingest.ReadingResult,
    types.ReadingsAnswer: ingest.ReadingsAnswer,
    types.DecidedReward: ingest.DecidedReward,
    types.DecisionReason: ingest.DecisionReason,
    types.Decision: ingest.Decision,
    types.Decisions: ingest.Decisions,
    types.Kind: ingest.Kind,
    types.Kinds: ingest.Kinds,
    types.IngestErasure: ingest.Erasure,
    # Portal
    types.Figures: impact.Figures,
    types.MonthFigures: impact.MonthFigures,
    types.ZoneMonthFigures: impact.ZoneMonthFigures,
    types.Factor: impact.Factor,
    types.PolicyUsed: impact.PolicyUsed,
    types.WindowOutcomes: impact.WindowOutcomes,
    types.ZoneImpact: impact.ZoneImpact,
}
"""Each SDK TypedDict and the service's response model whose JSON it types."""

CLIENT_SIDE: dict[Any, str] = {
    types.VerifiedTransaction: "the SDK makes it of a record, a checkpoint and a proof it checked (ledger.py)",
}
"""SDK TypedDicts no service answers as such, and why."""


def sdk_typeddicts() -> set[Any]:
    return {
        value for value in vars(types).values() if is_typeddict(value) and value.__module__ == types.__name__
    }


def json_key(name: str, field: FieldInfo) -> str:
    """A model field's key in the JSON: its alias, if it has one."""
    return field.serialization_alias or field.alias or name


def model_keys(model: type[BaseModel]) -> tuple[set[str], set[str]]:
    """The keys of `model`'s JSON: those always sent, and those a service may leave out (a field with a default:
    the routes answer with ``response_model_exclude_unset``)."""
    required: set[str] = set()
    optional: set[str] = set()
    for name, field in model.model_fields.items():
        (required if field.is_required() else optional).add(json_key(name, field))
    return required, optional


def typeddicts_in(hint: Any) -> Iterator[Any]:
    """The TypedDicts a type hint holds (``list[Notice]``, ``dict[str, CurrencyTotal]``, ``Score | None``)."""
    if is_typeddict(hint):
        yield hint
    for arg in get_args(hint):
        yield from typeddicts_in(arg)


def models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models a field's annotation holds."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):
        yield from models_in(arg)


def test_every_sdk_typeddict_mirrors_a_model_or_is_the_clients_own() -> None:
    mirrored, own, found = set(MIRRORS), set(CLIENT_SIDE), sdk_typeddicts()
    assert not mirrored & own, f"both mirrored and client-side: {mirrored & own}"
    assert found - mirrored - own == set(), (
        "pair each with its service's model in MIRRORS, or add to CLIENT_SIDE"
    )
    assert (mirrored | own) - found == set(), "no longer in smartcity_sdk/types.py"


@pytest.mark.parametrize(("typed", "model"), MIRRORS.items(), ids=lambda v: v.__qualname__)
def test_the_sdk_type_has_the_models_keys(typed: Any, model: type[BaseModel]) -> None:
    required, optional = model_keys(model)
    sdk_required, sdk_optional = set(typed.__required_keys__), set(typed.__optional_keys__)
    where = f"smartcity_sdk.types.{typed.__name__} and {model.__module__}.{model.__name__}"
    assert sdk_required == required, (
        f"{where}: keys always sent differ: only the SDK's {sorted(sdk_required - required)}, "
        f"only the model's {sorted(required - sdk_required)}"
    )
    assert sdk_optional == optional, (
        f"{where}: keys a service may leave out (NotRequired) differ: only the SDK's "
        f"{sorted(sdk_optional - optional)}, only the model's {sorted(optional - sdk_optional)}"
    )


@pytest.mark.parametrize(("typed", "model"), MIRRORS.items(), ids=lambda v: v.__qualname__)
def test_nested_answers_mirror_the_models_nested_models(typed: Any, model: type[BaseModel]) -> None:
    hints = typing.get_type_hints(typed)
    for name, field in model.model_fields.items():
        key = json_key(name, field)
        nested = {MIRRORS.get(t, t) for t in typeddicts_in(hints.get(key))}
        assert nested == set(models_in(field.annotation)), (
            f"smartcity_sdk.types.{typed.__name__}[{key!r}] holds {nested}, "
            f"{model.__name__}.{name} holds {set(models_in(field.annotation))}"
        )
