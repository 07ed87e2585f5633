"""Without Chromium the browser tests do not run quietly: they are skipped and named in the
"TESTS NOT RUN" banner, or fail under CRMDEALS_TEST_REQUIRE_SERVICES=1."""

from pathlib import Path

import pytest

from tests import services


def test_a_missing_chromium_skips_with_the_banners_reason_or_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(services, "CHROMIUM", tmp_path / "no-chromium")
    for required, outcome in ((False, pytest.skip.Exception), (True, pytest.fail.Exception)):
        monkeypatch.setattr(services, "REQUIRE_SERVICES", required)
        with pytest.raises(outcome) as raised:
            services.chromium()
        assert f"{services.NOT_RUN}: Chromium at " in str(raised.value)
        assert services.HOW_TO_START["Chromium"] in str(raised.value)


def test_chromium_is_installed() -> None:
    assert services.chromium().is_file()
