"""The chat -> contact index (``contact_chats``): kept equal to each contact's chats with a
``chatId`` by every upload, gone with each contact (the foreign key cascades), and the way
to a chat's contacts (a chat may belong to several). On SQLite and PostgreSQL."""

import anyio
import sqlalchemy as sa

from crmdeals.contacts.schemas import Contact, ContactData
from crmdeals.storage import Store
from crmdeals.storage.tables import contact_chats


def chat(chat_type: str, chat_id: str | None, username: str | None = None) -> ContactData:
    return ContactData(chatType=chat_type, chatId=chat_id, username=username, phone=None)  # type: ignore[arg-type]


def contact(contact_id: str, *chats: ContactData) -> Contact:
    return Contact(
        id=contact_id, responsibleUserId="u", name=contact_id, uri=None, contactData=list(chats)
    )


def index_rows(store: Store) -> set[tuple[int, str, str, str]]:
    columns = contact_chats.c
    query = sa.select(columns.account_id, columns.chat_type, columns.chat_id, columns.contact_id)
    with store.engine.connect() as connection:
        return {(row[0], row[1], row[2], row[3]) for row in connection.execute(query)}


def account_ids(store: Store) -> tuple[int, int]:
    first, second = store.list_accounts()[:2]
    return first.id, second.id


def test_uploads_replace_a_contacts_chat_rows_and_deletes_remove_them(store: Store) -> None:
    a, b = account_ids(store)
    wa, vk, tg = chat("whatsapp", "79011112233"), chat("vk", "v1"), chat("telegram", "t1")

    async def scenario() -> None:
        await store.upsert_contacts(account_id=a, contacts=[contact("1", wa, vk), contact("2", wa)])
        await store.upsert_contacts(account_id=b, contacts=[contact("1", wa)])
        assert index_rows(store) == {
            (a, "whatsapp", "79011112233", "1"),
            (a, "vk", "v1", "1"),
            (a, "whatsapp", "79011112233", "2"),
            (b, "whatsapp", "79011112233", "1"),
        }
        await store.upsert_contacts(account_id=a, contacts=[contact("1", vk, tg)])
        assert index_rows(store) == {
            (a, "vk", "v1", "1"),
            (a, "telegram", "t1", "1"),
            (a, "whatsapp", "79011112233", "2"),
            (b, "whatsapp", "79011112233", "1"),
        }
        assert await store.delete_contact(account_id=a, contact_id="2")
        assert await store.delete_contacts(account_id=a, contact_ids=["1", "9"]) == ["9"]
        assert index_rows(store) == {(b, "whatsapp", "79011112233", "1")}
        await store.delete_all_contacts(account_id=b)
        assert index_rows(store) == set()

    anyio.run(scenario)


def test_a_chat_without_a_chat_id_has_no_row_and_replacing_it_keeps_none(store: Store) -> None:
    a, _ = account_ids(store)
    by_username = chat("telegram", None, username="anna")

    async def scenario() -> None:
        await store.upsert_contacts(account_id=a, contacts=[contact("1", by_username)])
        assert index_rows(store) == set()
        await store.upsert_contacts(
            account_id=a, contacts=[contact("1", chat("telegram", "t1"), by_username)]
        )
        assert index_rows(store) == {(a, "telegram", "t1", "1")}
        # The chat id dropped again, beside a chat without one: its row goes.
        await store.upsert_contacts(account_id=a, contacts=[contact("1", by_username)])
        assert index_rows(store) == set()

    anyio.run(scenario)


def test_reuploading_a_contact_unchanged_keeps_its_rows(store: Store) -> None:
    a, _ = account_ids(store)
    same = contact("1", chat("vk", "v1"), chat("avito", "x"))

    async def scenario() -> None:
        await store.upsert_contacts(account_id=a, contacts=[same])
        before = index_rows(store)
        await store.upsert_contacts(account_id=a, contacts=[same, contact("2", chat("vk", "v1"))])
        assert index_rows(store) == before | {(a, "vk", "v1", "2")}

    anyio.run(scenario)


def test_a_chats_contacts_are_found_in_id_order_by_exact_type_and_id(store: Store) -> None:
    a, b = account_ids(store)
    wa = chat("whatsapp", "79011112233")

    async def scenario() -> None:
        await store.upsert_contacts(
            account_id=a,
            contacts=[
                contact("b", wa),
                contact("a", wa, chat("vk", "79011112233")),
                contact("B", wa),
                contact("c", chat("viber", "79011112233")),
            ],
        )
        await store.upsert_contacts(account_id=b, contacts=[contact("z", wa)])
        found = await store.contact_ids_of_chat(
            account_id=a, chat_type="whatsapp", chat_id="79011112233"
        )
        assert found == ["B", "a", "b"]
        assert await store.contact_ids_of_chat(account_id=a, chat_type="vk", chat_id="7901") == []

    anyio.run(scenario)
