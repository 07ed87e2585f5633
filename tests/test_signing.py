"""Signed tokens: only what the server signed, for the same purpose, unchanged, verifies."""

import msgspec

from crmdeals import panel
from crmdeals.signing import Signer


class Payload(msgspec.Struct):
    n: int


SIGNER = Signer("s" * 32)


def test_a_token_verifies_for_its_purpose_only() -> None:
    token = SIGNER.sign("one", Payload(1))
    assert SIGNER.verify("one", token, Payload) == Payload(1)
    assert SIGNER.verify("two", token, Payload) is None
    assert Signer("t" * 32).verify("one", token, Payload) is None


def test_changing_any_character_of_a_token_makes_it_invalid() -> None:
    token = SIGNER.sign("one", Payload(123456))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    for position, character in enumerate(token):
        for replacement in {alphabet[(alphabet.index(character) + 1) % len(alphabet)], "A", "="}:
            if replacement != character:
                changed = token[:position] + replacement + token[position + 1 :]
                assert SIGNER.verify("one", changed, Payload) is None, (position, replacement)
    for changed in (token + "A", token[:-1], "", ".", token.replace(".", "..")):
        assert SIGNER.verify("one", changed, Payload) is None


def test_garbage_never_raises() -> None:
    for text in ("é.é", "\x00", "a" * 5000, "e30." + "A" * 43, "....", "%%%.%%%"):
        assert SIGNER.verify("one", text, Payload) is None


def test_a_panel_grant_expires() -> None:
    link = panel.issue_link(
        SIGNER,
        base_url="http://h",
        account_id=1,
        user_id="u",
        contact_id="c",
        ttl_seconds=60,
        now=1000,
    )
    token = link.url.partition("token=")[2]
    assert panel.read_grant(SIGNER, token, now=1059) is not None
    assert panel.read_grant(SIGNER, token, now=1060) is None
    assert link.expiresAt == "1970-01-01T00:17:40Z"
