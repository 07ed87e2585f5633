"""The routes: ``deals`` (the contract) and ``health``."""
