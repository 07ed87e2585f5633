"""The integrator's suite in ``integrator/`` runs only inside the installed package's own
virtual environment (``test_installed_package.py``), never in this checkout's pytest."""

collect_ignore = ["integrator"]
