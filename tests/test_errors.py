"""The error classes of users, contacts and pipelines: status, code and ``data`` as CRM
section 10 says."""

import pytest

from crmdeals import errors
from crmdeals.errors import (
    ApiError,
    ContactNotFound,
    DuplicatePhoneNumber,
    InvalidContactsData,
    InvalidPipelinesData,
    InvalidUsersData,
    UserLimitExceeded,
    UserNotFound,
)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidUsersData, "INVALID_USERS_DATA"),
        (InvalidContactsData, "INVALID_CONTACTS_DATA"),
        (InvalidPipelinesData, "INVALID_PIPELINES_DATA"),
    ],
)
def test_invalid_items_are_400_with_the_entitys_code(error: type[ApiError], code: str) -> None:
    items = [{"index": 0, "fields": ["name"], "details": {"name": "Required field is missing"}}]
    raised = error("1 of 1 items are invalid.", items)
    assert (raised.status, raised.code, raised.data) == (400, code, items)


def test_duplicate_phone_number_lists_each_conflict_with_the_other_holder() -> None:
    conflicts = [{"index": 1, "phone": "79011112233", "userId": "u7"}]
    error = DuplicatePhoneNumber(conflicts)
    assert (error.status, error.code, error.data) == (400, "DUPLICATE_PHONE_NUMBER", conflicts)


def test_user_limit_exceeded_gives_the_limit_and_the_count_the_upload_would_leave() -> None:
    error = UserLimitExceeded(limit=1000, count=1003)
    assert (error.status, error.code) == (400, "USER_LIMIT_EXCEEDED")
    assert error.data == {"limit": 1000, "count": 1003}
    assert "1000" in error.description


@pytest.mark.parametrize(
    ("error", "code"), [(UserNotFound, "USER_NOT_FOUND"), (ContactNotFound, "CONTACT_NOT_FOUND")]
)
def test_an_unknown_user_or_contact_is_404_naming_the_id(
    error: type[UserNotFound | ContactNotFound], code: str
) -> None:
    raised = error("c/1")
    assert (raised.status, raised.code, raised.data) == (404, code, {"id": "c/1"})


def test_the_error_tree_in_the_docstring_names_every_error_class() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, ApiError) and value is not ApiError
    ]
    assert UserLimitExceeded in classes
    for error in classes:
        assert f"── {error.__name__} " in (errors.__doc__ or "")
        assert f" {error.status} {error.code}" in (errors.__doc__ or "")
