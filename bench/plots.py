"""The charts of ``bench/http.py``: PNG files drawn by matplotlib's Agg backend (no display).

- ``page_cost.png``: for each table (database, workers) and each account size, the cost of
  each page one client read against its offset: pages at random offsets (jumps) and pages
  read in order from the start and from the middle;
- ``floor_ratios.png``: each workload's requests (or deals) per second over its floor, a
  bar per table; 1 is the floor.
"""

from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

if TYPE_CHECKING:
    from bench.http import Table

PAGE_COST = "page_cost.png"
FLOOR_RATIOS = "floor_ratios.png"


def draw(tables: list["Table"], directory: Path) -> list[Path]:
    """Both charts of ``tables``, written into ``directory`` (made if missing); their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    charts = [directory / PAGE_COST, directory / FLOOR_RATIOS]
    _save(_page_cost(tables), charts[0])
    _save(_floor_ratios(tables), charts[1])
    return charts


def _page_cost(tables: list["Table"]) -> Figure:
    columns = max(len(table.walks) for table in tables)
    figure = Figure(figsize=(5 * columns, 3.4 * len(tables)), layout="constrained")
    grid = figure.subplots(len(tables), columns, squeeze=False)
    for row, table in enumerate(tables):
        for column, walk in enumerate(table.walks):
            axes = grid[row][column]
            for costs, style, label in (
                (walk.jumps, "x", "random offsets (jumps)"),
                (walk.from_start, ".", "in order from 0"),
                (walk.from_middle, ".", "in order from the middle"),
            ):
                offsets, milliseconds = zip(*costs, strict=True)
                axes.plot(offsets, milliseconds, style, markersize=4, label=label)
            axes.set_title(f"{table.title}: {walk.size:,} deals", fontsize="medium")
            axes.set_xlim(0, walk.size)
            axes.set_yscale("log")
            axes.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))  # 1, 2, 5, 10, 20, ...
            axes.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
            axes.yaxis.set_minor_formatter(NullFormatter())
            axes.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
            axes.set_xlabel("offset")
            axes.set_ylabel("ms per page, one client")
    grid[0][0].legend(fontsize="small")
    figure.suptitle("GET /v3/deals?offset=: the cost of a page against its offset")
    return figure


def _floor_ratios(tables: list["Table"]) -> Figure:
    names = list(dict.fromkeys(name for table in tables for name in table.ratios))
    height = 0.8 / len(tables)
    figure = Figure(figsize=(10, 1.5 + 0.25 * len(names) * len(tables)), layout="constrained")
    axes = figure.subplots()
    for index, table in enumerate(tables):
        present = [name for name in names if name in table.ratios]
        positions = [names.index(name) + index * height for name in present]
        values = [table.ratios[name] for name in present]
        bars = axes.barh(positions, values, height=height, label=table.title)
        axes.bar_label(bars, fmt="%.2f", fontsize="small", padding=2)
    axes.set_yticks([index + 0.4 - height / 2 for index in range(len(names))], names)
    axes.invert_yaxis()
    axes.axvline(1, color="black", linewidth=1, linestyle="--")
    axes.set_xlabel("workload over its floor (1: the floor)")
    axes.legend(fontsize="small", loc="lower right")
    figure.suptitle("crmdeals against its floors, measured in the same run")
    return figure


def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)  # the figure's canvas from now on: Agg draws it
    figure.savefig(path)
