"""``crmdeals.client.__all__`` is what the package exports (httpx's test of the same name):
a name added to the package and forgotten in ``__all__``, or the reverse, fails here."""

import types

import crmdeals.client


def test_all_lists_exactly_the_public_names_of_the_package() -> None:
    public = {
        name
        for name, value in vars(crmdeals.client).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert sorted(crmdeals.client.__all__) == sorted(public)
