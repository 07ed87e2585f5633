"""Links are safe to render: a stored ``uri`` (or ``link``) is an absolute http(s) URL, so a
page that renders it as ``<a href>`` cannot be made to run script, on any browser's reading.

Browsers strip leading and trailing C0 controls and spaces from a URL, drop tabs and
newlines anywhere in it, read schemes case-insensitively and read ``\\`` as ``/``; the cases
below try each of those, and a property test checks every accepted string by the same
reading.
"""

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from crmdeals.deals.validation import check_deal
from tests.factories import make_deal

URI_PROBLEM = "Expected an absolute `http://` or `https://` URL"

REFUSED = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "javascript://%0aalert(1)",
    " javascript:alert(1)",
    "\tjavascript:alert(1)",
    "\x01javascript:alert(1)",
    "\x00javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "jav&#x09;ascript:alert(1)",
    "vbscript:msgbox(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "blob:https://crm.example.com/1",
    "file:///etc/passwd",
    "ftp://crm.example.com/x",
    "//evil.example.com/x",
    "///evil.example.com",
    "/deals/1",
    "deals/1",
    "http:/crm.example.com",
    "http:crm.example.com",
    "http:\\\\evil.example.com",
    "https:\\\\evil.example.com",
    "https:/\\evil.example.com",
    "https://",
    "https:///x",
    "https://?x",
    "https://#x",
    " https://crm.example.com",
    "https://crm.example.com ",
    "\u00a0https://crm.example.com",
    "https://crm.example.com\n",
    "https://crm.example.com\r\n",
    "https://crm.example.com/\x00",
    "https://crm.example.com/\x7f",
    "https://crm.example.com/a b",
    "https://crm example.com",
    'https://crm.example.com/"onmouseover="alert(1)',
    "https://crm.example.com/'><script>alert(1)</script>",
    "https://crm.example.com/<script>",
    "https://crm.example.com/`",
    "https://evil.example.com\\@crm.example.com",
    "httpx://crm.example.com",
    "https//crm.example.com",
    "",
]

ACCEPTED = [
    "http://crm.example.com",
    "https://crm.example.com/deals/1?tab=2#notes",
    "HTTPS://CRM.EXAMPLE.COM/X",
    "hTtP://crm.example.com:8080/x",
    "https://user:secret@crm.example.com/x",
    "https://javascript:alert(1)@crm.example.com/",  # userinfo of an https URL: no script
    "https://例え.jp/取引",
    "https://[::1]:8443/x",
    "https://crm.example.com/a%20b",
]


def upload(client: TestClient, deal: dict[str, Any]) -> Any:
    return client.post("/v3/deals", json=[deal])


@pytest.mark.parametrize("field", ["uri", "link"])
@pytest.mark.parametrize("uri", REFUSED)
def test_every_link_that_is_not_an_absolute_http_url_is_refused(
    client: TestClient, uri: str, field: str
) -> None:
    deal = make_deal("1")
    del deal["uri"]
    deal[field] = uri
    response = upload(client, deal)
    assert response.status_code == 400
    problem = response.json()["data"][0]["details"][field]
    assert problem in {URI_PROBLEM, "Strings must not contain U+0000"}
    assert client.get("/v3/deals").json() == {"count": 0, "data": []}


@pytest.mark.parametrize("uri", ACCEPTED)
def test_absolute_http_urls_are_stored_as_sent(client: TestClient, uri: str) -> None:
    assert upload(client, make_deal("1", uri=uri)).status_code == 200
    assert client.get("/v3/deals/1").json()["uri"] == uri


def scheme_as_a_browser_reads_it(url: str) -> str:
    """The scheme a WHATWG URL parser finds: leading and trailing C0 controls and spaces
    stripped, tabs and newlines removed, lower case. (Browsers parse hrefs that way.)"""
    cleaned = re.sub("[\t\n\r]", "", url.strip("".join(map(chr, range(0x21)))))
    return urlsplit(cleaned.replace("\\", "/")).scheme.lower()


links = st.one_of(
    st.text(max_size=40),
    st.builds(
        "".join,
        st.lists(
            st.sampled_from(
                [
                    "http",
                    "HTTPS",
                    "s",
                    ":",
                    "/",
                    "//",
                    "\\",
                    "java",
                    "script",
                    "data",
                    " ",
                    "\t",
                    "\n",
                    "\x00",
                    "\x01",
                    "@",
                    "?",
                    "#",
                    "a.example",
                    "<",
                    '"',
                    "%0a",
                    "javascript:",
                ]
            ),
            max_size=8,
        ),
    ),
)


@settings(max_examples=1500)
@given(uri=links)
def test_every_accepted_link_is_http_or_https_to_a_browser(uri: str) -> None:
    checked = check_deal(make_deal("1", uri=uri))
    if isinstance(checked, dict):
        assert set(checked) == {"uri"}
        return
    assert checked.uri == uri
    assert scheme_as_a_browser_reads_it(uri) in {"http", "https"}
    assert urlsplit(uri).netloc
    assert not set(uri) & set('"<>`\\')
