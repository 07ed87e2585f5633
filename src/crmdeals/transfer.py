"""``crmdeals push`` and ``crmdeals pull``: a deal file to a server and back, through
``crmdeals.client``."""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from crmdeals.client import DealsClient
from crmdeals.deals.schemas import Deal
from crmdeals.deals.validation import check_deal
from crmdeals.files import Format, read_deals, write_deals


@dataclass
class CheckedFile:
    """A file's valid deals (one per id: the last row wins, as on the server) and its
    invalid rows: their line, and the problems by field."""

    deals: list[Deal] = field(default_factory=list)
    invalid: list[tuple[int, dict[str, str]]] = field(default_factory=list)


def check_file(path: Path) -> CheckedFile:
    """Read a deal file and check every row with the contract's rules."""
    checked = CheckedFile()
    by_id: dict[str, Deal] = {}
    for item in read_deals(path):
        result = check_deal(item.deal) if item.problem is None else {"line": item.problem}
        if isinstance(result, Deal):
            by_id.pop(result.id, None)  # the last row of an id takes the place of the others
            by_id[result.id] = result
        else:
            checked.invalid.append((item.line, result))
    checked.deals = list(by_id.values())
    return checked


def push(client: DealsClient, deals: list[Deal], *, mirror: bool, dry_run: bool) -> str:
    """Upload ``deals`` (with ``mirror``, only those the server lacks or holds otherwise,
    then delete the server's deals that are not in ``deals``); with ``dry_run``, print what
    would change instead. A one-line summary."""
    deleted: list[str] = []
    if mirror or dry_run:
        on_server = {deal.id: deal for deal in client.iter_deals()}
        in_file = {deal.id for deal in deals}
        added = [deal for deal in deals if deal.id not in on_server]
        changed = [deal for deal in deals if on_server.get(deal.id, deal) != deal]
        deleted = [deal_id for deal_id in on_server if deal_id not in in_file] if mirror else []
        if dry_run:
            lines = [f"+ {_quoted(deal.id)}" for deal in added]
            lines += [f"~ {_quoted(deal.id)}" for deal in changed]
            lines += [f"- {_quoted(deal_id)}" for deal_id in deleted]
            print("\n".join(lines), end="\n" if lines else "")
            unchanged = len(deals) - len(added) - len(changed)
            return (
                f"Dry run: would add {counted(len(added), 'deal')}, change "
                f"{counted(len(changed), 'deal')} and delete {counted(len(deleted), 'deal')}, "
                f"and leave {counted(unchanged, 'deal')} unchanged; nothing was sent."
            )
        deals = [deal for deal in deals if on_server.get(deal.id) != deal]
    started = time.monotonic()
    sent = _upsert_with_progress(client, deals)
    seconds = time.monotonic() - started
    stats = client.stats
    summary = (
        f"Pushed {counted(sent, 'deal')} in {seconds:.1f} s "
        f"({sent / seconds if seconds else 0:.0f} deals/s, {counted(stats.requests, 'request')}, "
        f"{counted(stats.retries, 'retry', 'retries')}, {stats.rate_limited} answered 429)."
    )
    if deleted:
        missing = client.delete_many(deleted)
        summary += f" Deleted {counted(len(deleted) - len(missing), 'deal')} not in the file."
    return summary


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``count`` and the noun, in the form the number takes: "1 deal", "2 deals"."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def pull(client: DealsClient, format_: Format, out: TextIO) -> int:
    """Write every deal of the account to ``out``; how many."""
    return write_deals(client.iter_deals(), format_, out)


def _quoted(deal_id: str) -> str:
    """An id as a JSON string: one line, whatever it holds."""
    return json.dumps(deal_id, ensure_ascii=False)


def _upsert_with_progress(client: DealsClient, deals: list[Deal]) -> int:
    started = time.monotonic()
    columns = (
        TextColumn("pushing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("deals, {task.fields[rate]} deals/s"),
        TimeRemainingColumn(),
    )
    console = Console(stderr=True, soft_wrap=True)
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("push", total=len(deals), rate="-")

        def advance(stored: int) -> None:
            done = progress.tasks[0].completed + stored
            rate = done / max(time.monotonic() - started, 1e-9)
            progress.update(task, advance=stored, rate=f"{rate:,.0f}")

        return client.upsert(deals, progress=advance)
