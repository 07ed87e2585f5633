"""Each public package's ``__all__`` is exactly what it exports (httpx's test of the same
name): a name added to a package and forgotten in ``__all__``, or the reverse, fails here.

A package's public names are the names it binds that do not start with ``_``, but for
modules (its submodules, ``httpx``) and what it imports from outside crmdeals for its own
use (``pathlib.Path``, ``typing.Any``): what it defines, and what it re-exports of crmdeals.
"""

import ast
import importlib
import inspect
import types

import pytest

PACKAGES = ["crmdeals.client", "crmdeals.storage", "crmdeals.testing"]


def ours(module: str | None) -> bool:
    return module == "crmdeals" or str(module).startswith("crmdeals.")


def imported_from_outside(package: types.ModuleType) -> set[str]:
    """The names the package's own source imports from modules outside crmdeals."""
    names: set[str] = set()
    for node in ast.parse(inspect.getsource(package)).body:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and not ours(node.module):
            names |= {alias.asname or alias.name for alias in node.names}
    return names


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_exactly_the_public_names_of_the_package(name: str) -> None:
    package = importlib.import_module(name)
    outside = imported_from_outside(package)
    public = {
        attribute
        for attribute, value in vars(package).items()
        if not attribute.startswith("_")
        and not isinstance(value, types.ModuleType)
        and attribute not in outside
    }
    assert sorted(package.__all__) == sorted(public)
