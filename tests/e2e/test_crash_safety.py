"""Crashes and shutdowns of a real server never lose an acknowledged upload nor store part of
one.

* SIGKILL at random moments while several clients upload: after every restart, each upload
  that was answered 200 is there in full (or replaced in full by a later write of the same
  ids), and each upload that the kill cut off is there in full or not at all; no deal mixes
  two writes and no batch is half stored.
* SIGTERM (graceful shutdown) in the middle of a stream of uploads: no 5xx, and every upload
  answered 200 is there after the restart.
* SIGTERM while a request's body is half sent: the server waits for the rest, answers 200,
  and the deals are stored.

Every upload is a batch of 100 deals. The ids name the upload that created them (a
"family": ``u{n}-{i:03}``); every field of every deal names the upload that wrote it, so a
partly applied upload or update shows as missing ids or as a mixture of uploads.
"""

import contextlib
import functools
import http.client
import itertools
import json
import random
import signal
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import MakeServer
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e

SEED = 20240611
KILLS = 24
"""SIGKILLs per backend, each at a random moment of a stream of uploads."""
KILL_DELAY = (0.05, 0.4)
"""Seconds from the start of the uploads to the kill: drawn uniformly, seeded."""
SHUTDOWNS = 3
"""Graceful shutdowns (SIGTERM) per backend, each in the middle of a stream of uploads."""
ACKNOWLEDGED_BEFORE_SHUTDOWN = 8
"""Uploads answered 200 in a round before its SIGTERM: the stream is flowing by then."""
WRITERS = 4
"""Client threads uploading at the same time."""
BATCH = 100
UPDATE_SHARE = 0.9
"""The share of uploads that rewrite the ids of an earlier acknowledged upload (the rest
upload new ids): low enough for new ids in every round, high enough to stay in bounds."""
FAMILIES_PER_WRITER = 22
"""New ids per client thread at most (22 uploads of 100), so the check after each restart
reads at most 88 pages; a thread that has them all only rewrites its ids."""
JOIN_TIMEOUT = 30.0
"""How long the client threads may take to stop once the server is killed or stopped
(``server.client()`` gives each request 10 s)."""
WAIT_TIMEOUT = 20.0
SOCKET_TIMEOUT = 40.0
"""More than the 30 s the server gives requests in flight when it shuts down."""
MAX_PAGES = 1000
GRACEFUL_EXIT_CODES = (0, -signal.SIGTERM)
"""uvicorn re-raises the SIGTERM it caught once it has shut down gracefully."""
NO_RATE_LIMIT = {"CRMDEALS_RATE_LIMIT": "off"}


def written(upload: int, deal_id: str) -> dict[str, Any]:
    """The deal ``deal_id`` as upload number ``upload`` writes it (and GET returns it)."""
    return {
        "id": deal_id,
        "responsibleUserId": f"upload-{upload}",
        "name": f"{deal_id} written by upload {upload}",
        "uri": f"https://crm.example.com/uploads/{upload}/{deal_id}",
        "contacts": [f"upload-{upload}", f"{deal_id}@upload-{upload}"],
        "closed": upload % 2 == 1,
    }


def writer_of(deal: dict[str, Any]) -> int | None:
    """The number of the upload a stored deal claims to come from."""
    prefix, _, number = str(deal.get("responsibleUserId")).partition("-")
    return int(number) if prefix == "upload" and number.isdigit() else None


# -- what was sent, and what may be stored ---------------------------------------------------


@dataclass
class Upload:
    number: int
    family: "Family"
    outcome: str = "pending"
    """``acknowledged`` (200), ``interrupted`` (the connection broke: stored or not),
    ``refused`` (no connection: never sent), or ``rejected <status>: <body>``."""

    def body(self) -> list[dict[str, Any]]:
        return [written(self.number, deal_id) for deal_id in self.family.ids]


@dataclass
class Family:
    """The ids created by one upload and every write of them, in order: only one client
    thread writes a family, one request after the other."""

    number: int
    ids: list[str]
    writes: list[Upload] = field(default_factory=list)
    floor: int = -1
    """Index of the last write known to be stored (answered 200, or seen after a restart):
    the family must hold it or a later write; -1: it may also be absent."""

    @property
    def acknowledged(self) -> bool:
        return any(write.outcome == "acknowledged" for write in self.writes)

    def problems(self, stored: dict[str, dict[str, Any]]) -> list[str]:
        """What is wrong with the deals of this family that the server holds."""
        name = f"the ids of upload {self.number}"
        allowed = self.writes[max(self.floor, 0) :]
        history = ", ".join(f"{write.number}: {write.outcome}" for write in self.writes)
        if not stored:
            if self.floor >= 0:
                return [
                    f"{name} are all gone, but upload {self.writes[self.floor].number} "
                    f"was stored (uploads {history})"
                ]
            return []
        problems = []
        if set(stored) != set(self.ids):
            problems.append(
                f"{name}: {len(stored)} of {len(self.ids)} stored (a partial upload; "
                f"uploads {history})"
            )
        writers = Counter(writer_of(deal) for deal in stored.values())
        if len(writers) > 1:
            problems.append(f"{name} mix several uploads {dict(writers)} (uploads {history})")
        for deal_id, deal in stored.items():
            number = writer_of(deal)
            if number is None or deal != written(number, deal_id):
                problems.append(f"{deal_id} is no upload's write: {deal}")
        [(number, _)] = writers.most_common(1)
        if number not in {write.number for write in allowed}:
            problems.append(
                f"{name} hold upload {number}, but only uploads "
                f"{[write.number for write in allowed]} may be there (uploads {history})"
            )
        return problems

    def seen(self, number: int) -> None:
        """After a restart the family holds upload ``number``: that write is durable."""
        index = next(i for i, write in enumerate(self.writes) if write.number == number)
        self.floor = max(self.floor, index)


class Ledger:
    """Every upload sent and every family, shared by the client threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self.families: dict[int, Family] = {}
        self.uploads: list[Upload] = []
        self.checked = 0
        """Families checked, summed over every check."""

    def new_family(self) -> Upload:
        with self._lock:
            number = next(self._numbers)
            family = Family(number, [f"u{number}-{i:03}" for i in range(BATCH)])
            self.families[number] = family
            return self._add(number, family)

    def update(self, family: Family) -> Upload:
        with self._lock:
            return self._add(next(self._numbers), family)

    def _add(self, number: int, family: Family) -> Upload:
        upload = Upload(number, family)
        family.writes.append(upload)
        self.uploads.append(upload)
        return upload

    def outcomes(self) -> Counter[str]:
        return Counter(upload.outcome.partition(" ")[0] for upload in self.uploads)

    def count(self, outcome: str) -> int:
        return self.outcomes()[outcome]

    def flowing(self, acknowledged: int) -> bool:
        """Whether ``acknowledged`` uploads were answered 200 by now (or one got an error status,
        which ends the wait: the test fails on it)."""
        return self.count("acknowledged") >= acknowledged or bool(self.rejections())

    def rejections(self) -> list[str]:
        return [
            f"upload {upload.number}: {upload.outcome}"
            for upload in self.uploads
            if upload.outcome.startswith("rejected")
        ]

    def check(self, deals: list[dict[str, Any]]) -> None:
        """Every family is stored in full from one allowed write, or absent when allowed;
        no other deal is stored. Then the writes seen become the families' floors."""
        stored: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
        problems = []
        for deal in deals:
            family_number, _, _ = str(deal["id"]).removeprefix("u").partition("-")
            if not family_number.isdigit() or int(family_number) not in self.families:
                problems.append(f"a deal no upload wrote: {deal}")
                continue
            stored[int(family_number)][deal["id"]] = deal
        for number, family in self.families.items():
            problems.extend(family.problems(stored.get(number, {})))
        assert problems == [], "\n".join(problems[:50])
        for number, deals_of_family in stored.items():
            writer = writer_of(next(iter(deals_of_family.values())))
            assert writer is not None
            self.families[number].seen(writer)
        self.checked += len(self.families)


class Writer:
    """A client thread: uploads batches one after the other, new ids or a rewrite of the ids
    of one of its own acknowledged uploads, until told to stop or the server is gone."""

    def __init__(self, ledger: Ledger, chooser: random.Random) -> None:
        self.ledger = ledger
        self.chooser = chooser
        self.families: list[Family] = []

    def next_upload(self) -> Upload:
        acknowledged = [family for family in self.families if family.acknowledged]
        full = len(self.families) >= FAMILIES_PER_WRITER
        if acknowledged and (full or self.chooser.random() < UPDATE_SHARE):
            return self.ledger.update(self.chooser.choice(acknowledged))
        upload = self.ledger.new_family()
        self.families.append(upload.family)
        return upload

    def run(self, server: ServerProcess, stop: threading.Event) -> None:
        with server.client() as client:
            while not stop.is_set():
                upload = self.next_upload()
                try:
                    response = client.post("/v3/deals", json=upload.body())
                except httpx.ConnectError:
                    upload.outcome = "refused"
                    return
                except httpx.TransportError:
                    upload.outcome = "interrupted"
                    return
                if response.status_code != 200:
                    upload.outcome = f"rejected {response.status_code}: {response.text[:200]}"
                    return
                upload.outcome = "acknowledged"
                upload.family.floor = upload.family.writes.index(upload)


@contextlib.contextmanager
def uploading(server: ServerProcess, writers: list[Writer]) -> Iterator[None]:
    """The writers upload in threads for the duration of the block; at its end they are
    told to stop, and must have stopped (bounded)."""
    stop = threading.Event()
    pool = ThreadPoolExecutor(len(writers))
    futures = [pool.submit(writer.run, server, stop) for writer in writers]
    try:
        yield
    finally:
        stop.set()
        _, not_done = wait(futures, timeout=JOIN_TIMEOUT)
        pool.shutdown(wait=False, cancel_futures=True)
    assert not not_done, f"{len(not_done)} client threads did not stop in {JOIN_TIMEOUT} s"
    for future in futures:
        future.result()


def every_deal(server: ServerProcess) -> list[dict[str, Any]]:
    """Every deal of the account, page after page (no limit on pages but ``MAX_PAGES``),
    checking ``count`` and the id order on the way."""
    deals: list[dict[str, Any]] = []
    with server.client() as client:
        for _ in range(MAX_PAGES):
            response = client.get("/v3/deals", params={"offset": len(deals)})
            assert response.status_code == 200, response.text
            page = response.json()
            deals.extend(page["data"])
            if len(page["data"]) < 100:
                assert page["count"] == len(deals)
                ids = [deal["id"] for deal in deals]
                assert ids == sorted(ids), "pages out of id order"
                assert len(set(ids)) == len(ids), "an id on two pages"
                return deals
    raise AssertionError(f"more than {MAX_PAGES} pages")


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.01)


def make_writers(ledger: Ledger, chooser: random.Random) -> list[Writer]:
    return [Writer(ledger, random.Random(chooser.random())) for _ in range(WRITERS)]


def summary(ledger: Ledger, started: float, events: str) -> str:
    """For ``pytest -s``: what the test did."""
    outcomes = Counter(
        f"{'update' if upload.number != upload.family.number else 'new'} "
        f"{upload.outcome.partition(' ')[0]}"
        for upload in ledger.uploads
    )
    return (
        f"{events}; {len(ledger.uploads)} uploads: {dict(sorted(outcomes.items()))}; "
        f"{len(ledger.families)} families of ids, {ledger.checked} family checks; "
        f"{time.monotonic() - started:.1f} s"
    )


# -- the tests --------------------------------------------------------------------------------


def test_sigkill_at_random_moments_loses_no_acknowledged_upload_and_splits_none(
    make_server: MakeServer,
) -> None:
    started = time.monotonic()
    server = make_server(workers=1, env=NO_RATE_LIMIT)
    chooser = random.Random(SEED)
    ledger = Ledger()
    writers = make_writers(ledger, chooser)
    for _ in range(KILLS):
        with uploading(server, writers):
            time.sleep(chooser.uniform(*KILL_DELAY))  # a random moment, not a wait for anything
            server.kill()
        server.start()
        ledger.check(every_deal(server))
    print(summary(ledger, started, f"{KILLS} kills"))

    assert ledger.rejections() == []
    assert ledger.count("acknowledged") > 0
    assert ledger.count("interrupted") > 0, "no kill cut off an upload: the test proved nothing"


def test_graceful_shutdown_loses_no_acknowledged_upload(make_server: MakeServer) -> None:
    started = time.monotonic()
    server = make_server(workers=1, env=NO_RATE_LIMIT)
    chooser = random.Random(SEED + 1)
    ledger = Ledger()
    writers = make_writers(ledger, chooser)
    for _ in range(SHUTDOWNS):
        target = ledger.count("acknowledged") + ACKNOWLEDGED_BEFORE_SHUTDOWN
        failed = ledger.count("interrupted") + ledger.count("refused")
        with uploading(server, writers):
            wait_until(
                functools.partial(ledger.flowing, target),
                f"{ACKNOWLEDGED_BEFORE_SHUTDOWN} uploads answered 200",
            )
            time.sleep(chooser.uniform(0, 0.1))  # a random moment, not a wait for anything
            assert ledger.count("interrupted") + ledger.count("refused") == failed, (
                "a connection failed before the shutdown began"
            )
            code = server.stop()
        assert code in GRACEFUL_EXIT_CODES, f"exit code {code}\n{server.stderr()}"
        assert ledger.rejections() == []  # no 5xx (nor any other error) while shutting down
        server.start()
        ledger.check(every_deal(server))
    print(summary(ledger, started, f"{SHUTDOWNS} graceful shutdowns"))


def refuses_connections(port: int) -> bool:
    try:
        probe = socket.create_connection(("127.0.0.1", port), timeout=1.0)
    except ConnectionRefusedError:
        return True
    probe.close()
    return False


def read_head(connection: socket.socket) -> bytes:
    """Bytes up to the end of a response head (byte by byte: nothing after it is consumed)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = connection.recv(1)
        assert byte, f"the server closed the connection after {head!r}"
        head += byte
    return head


def test_graceful_shutdown_finishes_a_request_in_flight(make_server: MakeServer) -> None:
    server = make_server(workers=1, env=NO_RATE_LIMIT)
    assert server.process is not None
    batch = [written(1, f"in-flight-{i:03}") for i in range(BATCH)]
    body = json.dumps(batch).encode()
    half = len(body) // 2
    head = (
        "POST /v3/deals HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {server.key}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\n"
        "\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=SOCKET_TIMEOUT) as connection:
        connection.sendall(head + body[:half])
        # The server answers "100 Continue" once the route starts reading the body: from
        # then on the request is in flight for certain.
        interim = read_head(connection)
        assert interim.startswith(b"HTTP/1.1 100 "), interim

        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: refuses_connections(server.port), "the server stops listening")
        assert server.running, "the server exited with a request in flight"

        connection.sendall(body[half:])
        response = http.client.HTTPResponse(connection)
        response.begin()
        answer = response.read()
        status = response.status
    assert status == 200, answer

    code = server.stop()
    assert code in GRACEFUL_EXIT_CODES, f"exit code {code}\n{server.stderr()}"
    server.start()
    assert every_deal(server) == batch
