"""Parsing bodies: any input gives deals or a contract error, and the fast path (one typed
decode) agrees with the item-by-item path that reports every problem."""

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmdeals.deals.validation import parse_deal_batch, parse_id_batch
from crmdeals.errors import ApiError, InvalidDealsData

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)
ids = st.text(min_size=1, max_size=100) | st.integers(-(2**63), 2**63 - 1)
deals = st.fixed_dictionaries(
    {
        "id": ids,
        "responsibleUserId": ids,
        "name": st.text(min_size=1, max_size=200),
        "contacts": st.lists(ids, min_size=1, max_size=10),
        "closed": st.booleans(),
    },
    optional={
        "uri": st.none() | st.sampled_from(["https://a.example/x", "http://b.example"]),
        "link": st.none() | st.just("https://link.example/"),
        "other": json_values,
    },
)
# A field replaced by any JSON value: sometimes still valid, usually not.
maybe_invalid_deals = st.one_of(
    deals,
    st.tuples(deals, st.sampled_from(["id", "name", "contacts", "closed", "uri"]), json_values).map(
        lambda t: {**t[0], t[1]: t[2]}
    ),
    json_values,
)


def text(value: str | int) -> str:
    return value if isinstance(value, str) else str(value)


def expected(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The contract's normalisation, written out plainly."""
    by_id: dict[str, dict[str, Any]] = {}
    for item in items:
        uri = item["uri"] if "uri" in item else item.get("link")
        deal_id = text(item["id"])
        by_id[deal_id] = {
            "id": deal_id,
            "responsibleUserId": text(item["responsibleUserId"]),
            "name": item["name"],
            "uri": uri,
            "contacts": list(dict.fromkeys(map(text, item["contacts"]))),
            "closed": item["closed"],
        }
    return list(by_id.values())


def as_dicts(body: bytes) -> list[dict[str, Any]]:
    return [
        {field: getattr(deal, field) for field in deal.__struct_fields__}
        for deal in parse_deal_batch(body)
    ]


@given(st.lists(deals, max_size=20))
def test_valid_batches_are_normalised_as_the_contract_says(items: list[dict[str, Any]]) -> None:
    body = json.dumps(items).encode()
    has_nul = "\\u0000" in body.decode()
    if has_nul:
        try:
            as_dicts(body)
        except InvalidDealsData:
            return
    assert as_dicts(body) == expected(items)


@given(st.lists(maybe_invalid_deals, max_size=8))
def test_any_batch_is_either_accepted_or_refused_with_every_bad_item_listed(
    items: list[Any],
) -> None:
    body = json.dumps(items).encode()
    try:
        parsed = parse_deal_batch(body)
    except InvalidDealsData as error:
        listed = [problem["index"] for problem in error.data]
        assert listed == sorted(set(listed))
        for index in listed:
            with pytest.raises(InvalidDealsData):
                parse_deal_batch(json.dumps([items[index]]).encode())
        return
    assert len(parsed) <= len(items)


@settings(max_examples=300)
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_give_deals_or_a_contract_error(body: bytes) -> None:
    for parse in (parse_deal_batch, parse_id_batch):
        try:
            parse(body)
        except ApiError as error:  # any other exception fails the test
            status = error.status
            assert status == 400


@given(st.lists(ids, max_size=100))
def test_bulk_delete_ids_are_normalised_each_once_in_order(values: list[str | int]) -> None:
    body = json.dumps(values).encode()
    try:
        parsed = parse_id_batch(body)
    except ApiError:
        assert any(isinstance(v, str) and "\x00" in v for v in values)
        return
    assert parsed == list(dict.fromkeys(map(text, values)))
