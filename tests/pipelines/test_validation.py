"""Pipelines (CRM section 3): every field rule of an upload, at the validation level.
Problems in stages are named by path (``stages[1].name``)."""

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmdeals.errors import InvalidPipelinesData, TooManyEntities
from crmdeals.pipelines.schemas import Pipeline, Stage
from crmdeals.pipelines.validation import check_pipeline, parse_pipeline_batch
from tests.factories import make_pipeline


def parse(*pipelines: Any) -> list[Pipeline]:
    return parse_pipeline_batch(json.dumps(pipelines).encode())


def stages(*stages: Any) -> list[Stage] | None:
    [pipeline] = parse(make_pipeline(stages=list(stages)))
    return pipeline.stages


def refused(*pipelines: Any) -> list[dict[str, Any]]:
    """Every invalid item of a refused upload, as ``INVALID_PIPELINES_DATA`` lists them."""
    with pytest.raises(InvalidPipelinesData) as caught:
        parse(*pipelines)
    assert caught.value.status == 400
    assert caught.value.code == "INVALID_PIPELINES_DATA"
    invalid: list[dict[str, Any]] = caught.value.data
    for item in invalid:
        assert item["fields"] == list(item["details"])
    return invalid


def details(pipeline: Any) -> dict[str, str]:
    [item] = refused(pipeline)
    assert item["index"] == 0
    problems: dict[str, str] = item["details"]
    return problems


def test_a_pipeline_is_normalised_with_every_key() -> None:
    pipeline = make_pipeline(7, stages=[{"id": 1, "name": "New"}, {"id": "2", "name": "Won"}])
    assert msgspec.to_builtins(parse(pipeline, make_pipeline(8, stages=None))) == [
        {
            "id": "7",
            "name": "Sales",
            "stages": [{"id": "1", "name": "New"}, {"id": "2", "name": "Won"}],
        },
        {"id": "8", "name": "Sales", "stages": None},
    ]


def test_a_pipeline_id_is_a_string_or_an_integer_normalised() -> None:
    assert [pipeline.id for pipeline in parse(make_pipeline(1), make_pipeline("x"))] == ["1", "x"]


@pytest.mark.parametrize("value", [1.5, 1.0, True, None, [], {}, 2**63, ""])
def test_other_pipeline_ids_are_refused(value: Any) -> None:
    assert list(details(make_pipeline(value))) == ["id"]


def test_a_pipeline_id_of_100_characters_is_accepted_and_101_refused() -> None:
    assert parse(make_pipeline("x" * 100))[0].id == "x" * 100
    assert list(details(make_pipeline("x" * 101))) == ["id"]


def test_a_pipeline_name_of_100_characters_is_accepted_and_101_refused() -> None:
    assert parse(make_pipeline(name="n" * 100))[0].name == "n" * 100
    assert details(make_pipeline(name="n" * 101)) == {"name": "Expected `str` of length <= 100"}
    assert details(make_pipeline(name="")) == {"name": "Expected `str` of length >= 1"}


@pytest.mark.parametrize("field", ["id", "name"])
def test_a_pipeline_id_and_name_are_required(field: str) -> None:
    pipeline = make_pipeline()
    del pipeline[field]
    assert details(pipeline) == {field: "Required field is missing"}


def test_absent_or_null_stages_are_none() -> None:
    pipeline = make_pipeline()
    del pipeline["stages"]
    assert parse(pipeline, make_pipeline("p2", stages=None))[0].stages is None
    assert parse(make_pipeline(stages=None))[0].stages is None


def test_empty_stages_are_refused() -> None:
    assert details(make_pipeline(stages=[])) == {"stages": "Expected `array` of length >= 1"}


def test_one_to_100_stages_are_accepted_and_101_refused() -> None:
    hundred = [{"id": i, "name": f"Stage {i}"} for i in range(100)]
    assert len(stages(*hundred) or []) == 100
    assert details(make_pipeline(stages=[*hundred, {"id": 100, "name": "x"}])) == {
        "stages": "Expected `array` of length <= 100"
    }


@pytest.mark.parametrize(("value", "sent"), [("New", "str"), ({"id": 1}, "object"), (1, "int")])
def test_stages_must_be_an_array_or_null(value: Any, sent: str) -> None:
    assert details(make_pipeline(stages=value)) == {
        "stages": f"Expected `array | null`, got `{sent}`"
    }


@pytest.mark.parametrize("field", ["id", "name"])
def test_a_stage_id_and_name_are_required_and_named_by_path(field: str) -> None:
    stage = {"id": "s2", "name": "Won"}
    del stage[field]
    problems = details(make_pipeline(stages=[{"id": "s1", "name": "New"}, stage]))
    assert problems == {f"stages[1].{field}": "Required field is missing"}


def test_stage_ids_and_names_follow_the_rules_of_id_and_name() -> None:
    assert stages({"id": 5, "name": "n" * 100}) == [Stage(id="5", name="n" * 100)]
    bad_stages = [
        {"id": "x" * 101, "name": "New"},
        {"id": True, "name": ""},
        "a stage",
        {"id": 2, "name": "n" * 101},
    ]
    assert list(details(make_pipeline(stages=bad_stages))) == [
        "stages[0].id",
        "stages[1].id",
        "stages[1].name",
        "stages[2]",
        "stages[3].name",
    ]


def test_a_stage_id_twice_the_last_content_wins_at_the_first_place() -> None:
    assert stages(
        {"id": 1, "name": "first"}, {"id": "2", "name": "Won"}, {"id": "1", "name": "last"}
    ) == [Stage(id="1", name="last"), Stage(id="2", name="Won")]


def test_a_pipeline_id_twice_the_last_content_wins_at_the_first_place() -> None:
    pipelines = parse(
        make_pipeline(1, name="first"),
        make_pipeline("p2", stages=[{"id": "s1", "name": "New"}]),
        make_pipeline("1", name="last", stages=None),
    )
    assert pipelines == [
        Pipeline(id="1", name="last", stages=None),
        Pipeline(id="p2", name="Sales", stages=[Stage(id="s1", name="New")]),
    ]


def test_an_empty_array_is_no_pipelines() -> None:
    assert parse() == []


def test_strings_holding_u0000_are_refused_by_path() -> None:
    assert details(make_pipeline(stages=[{"id": "s1", "name": "a\x00b"}])) == {
        "stages[0].name": "Strings must not contain U+0000"
    }


def test_every_invalid_pipeline_is_listed_and_the_valid_ones_are_not() -> None:
    invalid = refused(make_pipeline("ok"), make_pipeline(1.5), [], make_pipeline(stages=[]))
    assert [(item["index"], item["fields"]) for item in invalid] == [
        (1, ["id"]),
        (2, ["item"]),
        (3, ["stages"]),
    ]


def test_more_than_100_pipelines_is_too_many_entities_before_the_items_are_read() -> None:
    with pytest.raises(TooManyEntities) as caught:
        parse(*["not a pipeline"] * 101)
    assert caught.value.data == {"limit": 100, "count": 101}


def test_check_pipeline_gives_the_pipeline_or_its_problems_by_path() -> None:
    assert check_pipeline(make_pipeline(stages=None)) == Pipeline(
        id="p1", name="Sales", stages=None
    )
    assert check_pipeline(make_pipeline(stages=[{"id": 1}])) == {
        "stages[0].name": "Required field is missing"
    }


texts = st.text(min_size=1, max_size=100).filter(lambda text: "\x00" not in text)
stored_pipelines = st.builds(
    Pipeline,
    id=texts,
    name=texts,
    stages=st.none()
    | st.lists(
        st.builds(Stage, id=texts, name=texts),
        min_size=1,
        max_size=10,
        unique_by=lambda stage: stage.id,
    ),
)


@given(st.lists(stored_pipelines, max_size=10, unique_by=lambda pipeline: pipeline.id))
def test_what_get_returns_uploads_back_unchanged(stored: list[Pipeline]) -> None:
    assert parse_pipeline_batch(msgspec.json.encode(stored)) == stored
