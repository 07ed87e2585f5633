"""crmdeals as users install it: the wheel, with no extras, in a fresh virtual environment,
run from an empty folder.

The checkout's own environment has the ``dev`` extra, which hides a runtime dependency
missing from ``pyproject.toml`` (greenlet once sat there, and a plain ``pip install``
gave a command that could not print its help). Here nothing but the wheel and what it
declares is installed, until the last test adds pytest for the integrator's suite. The
tests of this module run in the order written, so the commands and the servers are tried
before pytest joins the environment.
"""

import os
import secrets
import signal
import subprocess
import sys
import tarfile
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from crmdeals import __version__
from crmdeals.testing import answers_healthz, free_port
from tests import services
from tests.readme import integration_test_example, webhook_test_example

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "src" / "crmdeals"
INTEGRATOR_SUITE = Path(__file__).with_name("integrator")
INSTALL_TIMEOUT = 600
"""Building and installing fetch from the package index (or pip's cache)."""


@dataclass(frozen=True)
class Installed:
    """The built distributions, and a virtual environment holding the wheel alone."""

    wheel: Path
    sdist: Path
    environment: Path

    def command(self, name: str) -> str:
        return str(self.environment / "bin" / name)

    def run(self, *arguments: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
        """``crmdeals ARGUMENTS`` in ``cwd``, with no ``CRMDEALS_*`` but ``env``."""
        return subprocess.run(
            [self.command("crmdeals"), *arguments],
            cwd=cwd,
            env=user_environment(**env),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def user_environment(**env: str) -> dict[str, str]:
    """This process's environment without its virtual environment or any ``CRMDEALS_*``."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CRMDEALS_", "VIRTUAL_ENV", "PYTHON"))
    }
    return inherited | env


def run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """``python -m build`` (the sdist, then the wheel built from it), and the wheel installed
    with no extras into a new virtual environment."""
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], cwd=dist)
    (wheel,) = dist.glob("crmdeals-*.whl")
    (sdist,) = dist.glob("crmdeals-*.tar.gz")
    environment = tmp_path_factory.mktemp("venv")
    venv.create(environment, with_pip=True, clear=True)
    run([str(environment / "bin" / "pip"), "install", "--quiet", str(wheel)], cwd=dist)
    return Installed(wheel, sdist, environment)


@pytest.fixture
def empty_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def package_files() -> set[str]:
    """Every file of the package in the checkout, as ``crmdeals/...`` paths."""
    return {
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_the_wheel_carries_every_file_of_the_package(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        carried = set(wheel.namelist())
    assert package_files() - carried == set()
    for needed in (
        "crmdeals/storage/migrations/env.py",
        "crmdeals/storage/migrations/script.py.mako",
        "crmdeals/web/templates/panel.html",
        "crmdeals/web/static/style.css",
    ):
        assert needed in carried


def test_the_sdist_carries_the_package_and_its_tests(installed: Installed) -> None:
    with tarfile.open(installed.sdist) as sdist:
        carried = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {f"src/{path}" for path in package_files()} - carried == set()
    assert {"pyproject.toml", "README.md", "tests/package/integrator/test_sync.py"} <= carried


def test_help_and_version_work_from_an_empty_folder(
    installed: Installed, empty_folder: Path
) -> None:
    helped = installed.run("--help", cwd=empty_folder)
    assert helped.returncode == 0, helped.stderr
    for command in ("serve", "accounts", "keys", "push", "pull", "panel-link"):
        assert command in helped.stdout
    version = installed.run("--version", cwd=empty_folder)
    assert (version.returncode, version.stdout.strip()) == (0, f"crmdeals {__version__}")
    assert list(empty_folder.iterdir()) == []  # neither command made a database


def test_the_client_imports_no_server_stack(installed: Installed, empty_folder: Path) -> None:
    probe = (
        "import sys, crmdeals.client\n"
        "heavy = {'fastapi', 'uvicorn', 'sqlalchemy', 'alembic', 'prometheus_client',"
        " 'pydantic_settings', 'crmdeals.settings'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [installed.command("python"), "-c", probe],
        cwd=empty_folder,
        env=user_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The default SQLite file (nothing set), or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield {}
        return
    with services.postgres_database() as url:
        yield {"CRMDEALS_DATABASE_URL": url}


def test_serve_stores_and_answers_a_deal(
    installed: Installed, empty_folder: Path, database_env: dict[str, str]
) -> None:
    key, port = secrets.token_hex(16), free_port()
    url = f"http://127.0.0.1:{port}"
    env = user_environment(CRMDEALS_BOOTSTRAP_KEY=key, **database_env)
    with (empty_folder / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [installed.command("crmdeals"), "serve", "--port", str(port)],
            cwd=empty_folder,
            env=env,
            stdout=log,
            stderr=log,
        )
    try:
        assert answers_healthz(url, server), (empty_folder / "server.log").read_text()
        headers = {"Authorization": f"Bearer {key}"}
        deal = {"id": "1", "responsibleUserId": "u", "name": "N", "contacts": ["c"], "closed": True}
        assert httpx.post(f"{url}/v3/deals", json=[deal], headers=headers).status_code == 200
        stored = httpx.get(f"{url}/v3/deals/1", headers=headers).json()
        assert stored == {**deal, "uri": None}
        # /docs from what the wheel declares (Swagger UI comes with fastapi-offline)
        assert httpx.get(f"{url}/docs").status_code == 200
        swagger_ui = httpx.get(f"{url}/static/swagger-ui/swagger-ui-bundle.js")
        assert swagger_ui.status_code == 200
        assert "SwaggerUIBundle" in swagger_ui.text
    finally:
        server.terminate()
        server.wait(30)
    assert server.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    made = {path.name for path in empty_folder.iterdir()} - {"server.log"}
    assert made == (set() if database_env else {"crmdeals.db"})


def test_the_readmes_wheel_installs_with_pipx(tmp_path: Path) -> None:
    """The README's way for the command alone: ``pip wheel --no-deps -w dist .``, then
    ``pipx install`` of that wheel (pipx itself from the package index, in a venv of its
    own; its home and its commands in this test's folder)."""
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), "."], cwd=ROOT)
    (wheel,) = dist.glob("crmdeals-*.whl")
    tools = tmp_path / "tools"
    venv.create(tools, with_pip=True)
    run([str(tools / "bin" / "pip"), "install", "--quiet", "pipx"], cwd=tmp_path)
    env = user_environment(PIPX_HOME=str(tmp_path / "pipx"), PIPX_BIN_DIR=str(tmp_path / "bin"))
    installing = subprocess.run(
        [str(tools / "bin" / "pipx"), "install", str(wheel)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    assert installing.returncode == 0, installing.stdout + installing.stderr
    version = subprocess.run(
        [str(tmp_path / "bin" / "crmdeals"), "--version"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (version.returncode, version.stdout.strip()) == (0, f"crmdeals {__version__}")


def test_an_integrators_suite_passes_with_the_fixture(installed: Installed, tmp_path: Path) -> None:
    """Last: it installs pytest, which the commands above must not have needed."""
    run([installed.command("pip"), "install", "--quiet", "pytest"], cwd=tmp_path)
    suite = tmp_path / "integration"
    suite.mkdir()
    for test_file in INTEGRATOR_SUITE.glob("test_*.py"):
        (suite / test_file.name).write_text(test_file.read_text())
    (suite / "test_readme_example.py").write_text(integration_test_example())
    (suite / "test_readme_webhook_example.py").write_text(webhook_test_example())
    result = subprocess.run(
        [installed.command("pytest"), "-q", "-p", "no:cacheprovider"],
        cwd=suite,
        env=user_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout
