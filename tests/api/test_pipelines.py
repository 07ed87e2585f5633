"""POST and GET /v3/pipelines (CRM section 3): an upload replaces the account's whole set,
the list is that set in the order last sent; every field rule, all-or-nothing, last-wins."""

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.storage import Store
from tests.conftest import KEY_A, KEY_B, client_of
from tests.factories import make_pipeline


def upload(client: TestClient, body: Any) -> Any:
    return client.post("/v3/pipelines", content=json.dumps(body))


def listed(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/v3/pipelines")
    assert response.status_code == 200, response.text
    pipelines: list[dict[str, Any]] = response.json()
    return pipelines


def assert_refused(client: TestClient, body: Any, code: str, *, raw: bool = False) -> Any:
    """Send ``body`` (JSON-encoded unless ``raw``); expect 400 ``code`` and the stored
    pipelines unchanged. The error's ``data``."""
    before = listed(client)
    response = client.post("/v3/pipelines", content=body if raw else json.dumps(body))
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error"] == code
    assert isinstance(error["description"], str)
    assert error["description"]
    assert listed(client) == before
    return error.get("data")


def invalid_fields(client: TestClient, pipeline: Any) -> dict[str, str]:
    """Upload one pipeline that must be refused; the details of its one invalid item."""
    [item] = assert_refused(client, [pipeline], "INVALID_PIPELINES_DATA")
    assert item["index"] == 0
    assert item["fields"] == list(item["details"])
    details: dict[str, str] = item["details"]
    return details


@pytest.fixture
def stored(client: TestClient) -> list[dict[str, Any]]:
    """Account A holds two pipelines, so that a refused upload has something to keep."""
    assert (
        upload(client, [make_pipeline("p1"), make_pipeline("p2", stages=None)]).status_code == 200
    )
    return listed(client)


# -- success ---------------------------------------------------------------------------------


def test_upload_answers_200_with_an_empty_body(client: TestClient) -> None:
    response = upload(client, [make_pipeline()])
    assert response.status_code == 200
    assert response.content == b""


def test_an_account_without_pipelines_lists_a_plain_empty_array(client: TestClient) -> None:
    response = client.get("/v3/pipelines")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == []


def test_pipelines_are_listed_normalised_with_every_key(client: TestClient) -> None:
    upload(
        client,
        [
            make_pipeline(7, stages=[{"id": 1, "name": "New"}, {"id": "two", "name": "Won"}]),
            {"id": "no-stages", "name": "Bare"},
            make_pipeline("null-stages", stages=None),
        ],
    )
    assert listed(client) == [
        {
            "id": "7",
            "name": "Sales",
            "stages": [{"id": "1", "name": "New"}, {"id": "two", "name": "Won"}],
        },
        {"id": "no-stages", "name": "Bare", "stages": None},
        {"id": "null-stages", "name": "Sales", "stages": None},
    ]


def test_the_list_is_in_the_order_last_sent_not_by_id(client: TestClient) -> None:
    ids = ["z", "10", "a", "9", "B"]
    upload(client, [make_pipeline(pipeline_id) for pipeline_id in ids])
    assert [pipeline["id"] for pipeline in listed(client)] == ids
    upload(client, [make_pipeline(pipeline_id) for pipeline_id in reversed(ids)])
    assert [pipeline["id"] for pipeline in listed(client)] == ids[::-1]


def test_an_upload_replaces_the_whole_set(client: TestClient, stored: list[dict[str, Any]]) -> None:
    replacement = make_pipeline("p2", name="Renamed", stages=[{"id": "only", "name": "Only"}])
    assert upload(client, [make_pipeline("p3"), replacement]).status_code == 200
    assert listed(client) == [
        make_pipeline("p3"),
        {"id": "p2", "name": "Renamed", "stages": [{"id": "only", "name": "Only"}]},
    ]


def test_a_pipeline_sent_again_without_stages_loses_them(client: TestClient) -> None:
    upload(client, [make_pipeline("p1")])
    upload(client, [{"id": "p1", "name": "Sales"}])
    assert listed(client) == [{"id": "p1", "name": "Sales", "stages": None}]


def test_an_empty_array_removes_every_pipeline(
    client: TestClient, stored: list[dict[str, Any]]
) -> None:
    assert upload(client, []).status_code == 200
    assert listed(client) == []
    assert upload(client, []).status_code == 200
    assert listed(client) == []


def test_what_get_returns_posts_back_unchanged(client: TestClient) -> None:
    upload(client, [make_pipeline(1), make_pipeline("p2", stages=None), make_pipeline(3)])
    before = listed(client)
    assert client.post("/v3/pipelines", json=before).status_code == 200
    assert listed(client) == before


def test_integer_and_string_ids_are_the_same_pipeline_and_stage(client: TestClient) -> None:
    body = [
        make_pipeline(1, stages=[{"id": 5, "name": "first"}, {"id": "5", "name": "second"}]),
        make_pipeline("1", name="Again"),
    ]
    upload(client, body)
    assert listed(client) == [{"id": "1", "name": "Again", "stages": make_pipeline()["stages"]}]


def test_a_pipeline_id_twice_keeps_the_last_content_at_the_first_place(client: TestClient) -> None:
    upload(
        client, [make_pipeline("a", name="old"), make_pipeline("b"), make_pipeline("a", name="new")]
    )
    pipelines = listed(client)
    assert [(pipeline["id"], pipeline["name"]) for pipeline in pipelines] == [
        ("a", "new"),
        ("b", "Sales"),
    ]


def test_a_stage_id_twice_keeps_the_last_content_at_the_first_place(client: TestClient) -> None:
    stages = [
        {"id": "s1", "name": "old"},
        {"id": "s2", "name": "Middle"},
        {"id": "s1", "name": "new"},
    ]
    upload(client, [make_pipeline("p", stages=stages)])
    assert listed(client)[0]["stages"] == [
        {"id": "s1", "name": "new"},
        {"id": "s2", "name": "Middle"},
    ]


def test_pipelines_may_share_stage_ids(client: TestClient) -> None:
    upload(client, [make_pipeline("p1"), make_pipeline("p2")])
    assert [pipeline["stages"] for pipeline in listed(client)] == [make_pipeline()["stages"]] * 2


def test_fields_the_contract_does_not_name_are_ignored(client: TestClient) -> None:
    stage = {"id": "s", "name": "S", "color": ["anything", {"nested": None}]}
    upload(client, [make_pipeline("p", stages=[stage], sort=1, extra={"x": "\u0000"})])
    assert listed(client) == [{"id": "p", "name": "Sales", "stages": [{"id": "s", "name": "S"}]}]


def test_the_longest_values_and_the_most_stages_are_accepted(client: TestClient) -> None:
    stages = [{"id": f"{n:0100d}", "name": "é" * 100} for n in range(100)]
    body = [make_pipeline("x" * 100, name="é" * 100, stages=stages)]
    assert upload(client, body).status_code == 200
    assert listed(client) == body


def test_100_pipelines_are_accepted(client: TestClient) -> None:
    body = [make_pipeline(f"p{n:03d}") for n in range(100)]
    assert upload(client, body).status_code == 200
    assert listed(client) == body


def test_the_list_has_no_paging_and_ignores_offset(client: TestClient) -> None:
    body = [make_pipeline(f"p{n:03d}", stages=None) for n in range(100)]
    upload(client, body)
    response = client.get("/v3/pipelines", params={"offset": "50"})
    assert response.status_code == 200
    assert response.json() == listed(client) == body


# -- refused, and nothing changed --------------------------------------------------------------


def test_more_than_100_pipelines_are_refused_before_anything_else(
    client: TestClient, stored: list[dict[str, Any]]
) -> None:
    data = assert_refused(client, [{"id": None}] * 101, "TOO_MANY_ENTITIES")
    assert data == {"limit": 100, "count": 101}


def test_one_invalid_pipeline_writes_nothing_and_every_invalid_one_is_listed(
    client: TestClient, stored: list[dict[str, Any]]
) -> None:
    body = [
        make_pipeline("ok"),
        make_pipeline("", stages=[{"id": "s", "name": "S"}, {"id": "t", "name": ""}]),
        make_pipeline("ok2"),
        {"name": "no id"},
    ]
    data = assert_refused(client, body, "INVALID_PIPELINES_DATA")
    assert [(item["index"], item["fields"]) for item in data] == [
        (1, ["id", "stages[1].name"]),
        (3, ["id"]),
    ]
    assert data[1]["details"] == {"id": "Required field is missing"}


@pytest.mark.parametrize("bad_id", [None, True, 1.5, 1.0, [], {}, "", "x" * 101, 2**64], ids=repr)
def test_an_invalid_pipeline_id_is_refused(
    client: TestClient, stored: list[dict[str, Any]], bad_id: Any
) -> None:
    assert list(invalid_fields(client, make_pipeline(bad_id))) == ["id"]


def test_a_pipeline_without_an_id_is_refused(client: TestClient) -> None:
    pipeline = make_pipeline()
    del pipeline["id"]
    assert invalid_fields(client, pipeline) == {"id": "Required field is missing"}


@pytest.mark.parametrize("bad_name", [None, 1, "", "x" * 101, ["n"]], ids=repr)
def test_an_invalid_pipeline_name_is_refused(client: TestClient, bad_name: Any) -> None:
    assert list(invalid_fields(client, make_pipeline(name=bad_name))) == ["name"]


def test_a_pipeline_without_a_name_is_refused(client: TestClient) -> None:
    pipeline = make_pipeline()
    del pipeline["name"]
    assert invalid_fields(client, pipeline) == {"name": "Required field is missing"}


def test_an_empty_stages_list_is_refused(client: TestClient, stored: list[dict[str, Any]]) -> None:
    assert list(invalid_fields(client, make_pipeline(stages=[]))) == ["stages"]


def test_more_than_100_stages_are_refused(client: TestClient) -> None:
    stages = [{"id": str(n), "name": "S"} for n in range(101)]
    assert list(invalid_fields(client, make_pipeline(stages=stages))) == ["stages"]


@pytest.mark.parametrize("bad_stages", ["s1", {"id": "s", "name": "S"}, 1, True], ids=repr)
def test_stages_that_are_not_an_array_are_refused(client: TestClient, bad_stages: Any) -> None:
    assert list(invalid_fields(client, make_pipeline(stages=bad_stages))) == ["stages"]


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ({"name": "S"}, ["stages[1].id"]),
        ({"id": "s"}, ["stages[1].name"]),
        ({"id": "", "name": ""}, ["stages[1].id", "stages[1].name"]),
        ({"id": "x" * 101, "name": "x" * 101}, ["stages[1].id", "stages[1].name"]),
        ({"id": 1.5, "name": 7}, ["stages[1].id", "stages[1].name"]),
        ({"id": None, "name": None}, ["stages[1].id", "stages[1].name"]),
        ("not an object", ["stages[1]"]),
        (None, ["stages[1]"]),
    ],
    ids=repr,
)
def test_an_invalid_stage_is_named_by_its_path(
    client: TestClient, stored: list[dict[str, Any]], stage: Any, expected: list[str]
) -> None:
    pipeline = make_pipeline(stages=[{"id": "fine", "name": "Fine"}, stage])
    assert list(invalid_fields(client, pipeline)) == expected


@pytest.mark.parametrize(
    "pipeline",
    [
        make_pipeline("a\u0000b"),
        make_pipeline(name="a\u0000b"),
        make_pipeline(stages=[{"id": "a\u0000b", "name": "S"}]),
        make_pipeline(stages=[{"id": "s", "name": "a\u0000b"}]),
    ],
    ids=["id", "name", "stage id", "stage name"],
)
def test_u0000_is_refused_anywhere(
    client: TestClient, stored: list[dict[str, Any]], pipeline: dict[str, Any]
) -> None:
    [reason] = invalid_fields(client, pipeline).values()
    assert "U+0000" in reason


@pytest.mark.parametrize("item", [None, "p1", 1, ["p1"]], ids=repr)
def test_an_item_that_is_not_an_object_is_refused(client: TestClient, item: Any) -> None:
    assert list(invalid_fields(client, item)) == ["item"]


@pytest.mark.parametrize("body", [b"", b"[", b"[}", b"\xff\xfe", b"[{'id': 1}]"], ids=repr)
def test_a_body_that_is_not_json_is_refused(
    client: TestClient, stored: list[dict[str, Any]], body: bytes
) -> None:
    assert_refused(client, body, "INVALID_JSON", raw=True)


@pytest.mark.parametrize("body", [{"id": "p1", "name": "n"}, "p1", 1, None], ids=repr)
def test_a_body_that_is_not_an_array_is_refused(
    client: TestClient, stored: list[dict[str, Any]], body: Any
) -> None:
    data = assert_refused(client, body, "INVALID_REQUEST")
    assert list(data["fields"]) == ["body"]


def test_a_body_over_the_size_limit_is_refused(
    client: TestClient, stored: list[dict[str, Any]]
) -> None:
    stages = [{"id": str(n), "name": "n" * 100} for n in range(100)]
    body = [make_pipeline(str(n), stages=stages) for n in range(100)]  # about 1.2 MB
    response = upload(client, body)
    assert response.status_code == 413
    assert response.json()["error"] == "PAYLOAD_TOO_LARGE"
    assert listed(client) == stored


# -- accounts, keys, concurrency ---------------------------------------------------------------


def test_each_account_has_its_own_pipelines(client: TestClient, client_b: TestClient) -> None:
    upload(client, [make_pipeline("shared", name="A's"), make_pipeline("a-only")])
    upload(client_b, [make_pipeline("shared", name="B's")])
    assert [pipeline["name"] for pipeline in listed(client_b)] == ["B's"]
    upload(client_b, [])
    assert [pipeline["id"] for pipeline in listed(client)] == ["shared", "a-only"]
    assert listed(client_b) == []


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_pipelines_need_a_valid_key(
    anonymous: TestClient, client: TestClient, stored: list[dict[str, Any]], method: str
) -> None:
    for headers in ({}, {"Authorization": f"Bearer {'c' * 32}"}):
        response = anonymous.request(method, "/v3/pipelines", json=[], headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "UNAUTHORIZED"
    assert listed(client) == stored


def test_concurrent_uploads_all_succeed_and_one_whole_set_wins(client: TestClient) -> None:
    """Each upload replaces the set whole: the set afterwards is exactly one of them, never
    a mix, and none fails because of another."""
    bodies = [
        [make_pipeline(f"u{writer}-{n}", stages=None) for n in range(writer % 3, 30)]
        for writer in range(12)
    ]
    with ThreadPoolExecutor(len(bodies)) as pool:
        statuses = list(pool.map(lambda body: upload(client, body).status_code, bodies))
    assert statuses == [200] * len(bodies)
    assert listed(client) in bodies


# -- the sandbox -------------------------------------------------------------------------------


@pytest.fixture
def sandboxed(settings: Settings, store: Store) -> Iterator[TestClient]:
    """A client without a key that runs an app in sandbox mode."""
    with TestClient(create_app(settings.model_copy(update={"sandbox": True}))) as nobody:
        yield nobody


@pytest.fixture
def a(sandboxed: TestClient) -> Iterator[TestClient]:
    yield from client_of(sandboxed, KEY_A)


@pytest.fixture
def b(sandboxed: TestClient) -> Iterator[TestClient]:
    yield from client_of(sandboxed, KEY_B)


def test_the_sandbox_reset_removes_the_accounts_pipelines_only(
    a: TestClient, b: TestClient
) -> None:
    upload(a, [make_pipeline("p1")])
    upload(b, [make_pipeline("b1")])
    assert a.post("/sandbox/reset").status_code == 200
    assert listed(a) == []
    assert listed(b) == [make_pipeline("b1")]


def test_a_sandbox_fault_can_name_the_pipeline_routes_and_stores_nothing(a: TestClient) -> None:
    upload(a, [make_pipeline("p1")])
    for route in ("POST /v3/pipelines", "GET /v3/pipelines"):
        response = a.post("/sandbox/faults", json={"route": route, "status": 503})
        assert response.status_code == 200, response.text
    response = upload(a, [])
    assert response.status_code == 503
    assert response.json()["error"] == "SERVICE_UNAVAILABLE"
    assert a.get("/v3/pipelines").status_code == 503
    assert listed(a) == [make_pipeline("p1")]
