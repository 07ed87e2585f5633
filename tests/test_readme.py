"""The README documents every setting, and only real ones."""

from crmdeals.settings import Settings
from tests.readme import README, api_examples, documented_settings, images


def test_every_setting_is_documented_in_the_configuration_table() -> None:
    settings = {f"CRMDEALS_{name.upper()}" for name in Settings.model_fields}
    assert documented_settings() == settings


def test_the_api_examples_cover_every_route() -> None:
    commands = " ".join(example.command for example in api_examples())
    for route in ("POST http://", "PATCH http://", "DELETE http://", "/v3/deals?offset="):
        assert route in commands.replace("-X ", "").replace("'", "")
    assert "http://127.0.0.1:8000/v3/deals/2 " in commands


def test_the_readme_shows_both_pages_from_png_files_in_the_repository() -> None:
    shown = images()
    assert {"docs/panel.png", "docs/inspector.png"} <= set(shown)
    for path in shown:
        assert (README.parent / path).read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), path
