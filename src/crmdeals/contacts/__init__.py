"""The contact: its contract types (``schemas``) and the parsing of request bodies
(``validation``)."""
