"""The API through PgBouncer in transaction mode (Debian's stock startup parameters): the
storage tests' HTTP layer, re-run here with the ``pgbouncer`` database. Each transaction
may run on another server connection, so anything that outlives a transaction (a prepared
statement, a session setting, a startup parameter PgBouncer refuses) fails these.

The test functions are the other modules' own, imported: each rule is written once."""

import pytest

from tests.api.test_bulk_delete import (
    five,
    test_all_existing_answers_an_empty_array,
    test_missing_ids_are_answered_normalised_once_in_request_order,
    test_one_hundred_ids_are_accepted,
)
from tests.api.test_list import (
    deals_250,
    test_pages_of_250_deals,
    test_paging_by_count_reads_every_deal_once_in_order,
)
from tests.api.test_list_filters import (
    test_an_upload_replaces_a_deals_contacts_in_the_filter,
    test_filtered_pages_follow_offset_and_count_every_match,
)
from tests.api.test_one_deal import (
    test_delete_answers_200_with_an_empty_body,
    test_delete_twice_is_not_found_the_second_time,
    test_every_accepted_id_is_reachable_when_percent_encoded,
    test_get_unknown_id_is_deal_not_found,
)
from tests.api.test_panel_links import test_a_link_names_the_account_user_contact_and_expiry
from tests.api.test_upload import (
    test_existing_id_has_every_field_replaced,
    test_one_hundred_items_are_accepted,
    test_same_id_twice_in_one_body_last_occurrence_wins,
    test_uploaded_deal_is_returned_normalised_with_every_key,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["pgbouncer"], indirect=True),
]

__all__ = [
    "deals_250",
    "five",
    "test_a_link_names_the_account_user_contact_and_expiry",
    "test_all_existing_answers_an_empty_array",
    "test_an_upload_replaces_a_deals_contacts_in_the_filter",
    "test_delete_answers_200_with_an_empty_body",
    "test_delete_twice_is_not_found_the_second_time",
    "test_every_accepted_id_is_reachable_when_percent_encoded",
    "test_existing_id_has_every_field_replaced",
    "test_filtered_pages_follow_offset_and_count_every_match",
    "test_get_unknown_id_is_deal_not_found",
    "test_missing_ids_are_answered_normalised_once_in_request_order",
    "test_one_hundred_ids_are_accepted",
    "test_one_hundred_items_are_accepted",
    "test_pages_of_250_deals",
    "test_paging_by_count_reads_every_deal_once_in_order",
    "test_same_id_twice_in_one_body_last_occurrence_wins",
    "test_uploaded_deal_is_returned_normalised_with_every_key",
]
