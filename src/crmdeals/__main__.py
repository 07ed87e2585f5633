"""``python -m crmdeals``: the ``crmdeals`` command."""

from crmdeals.cli import app

app()
