"""crmdeals: a self-hostable server for a chat platform's Deals API."""

__version__ = "0.1.0"
