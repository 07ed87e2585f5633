"""The pipeline (a sales funnel) and its stages: contract types (``schemas``) and the
parsing of request bodies (``validation``)."""
