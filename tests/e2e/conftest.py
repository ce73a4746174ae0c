"""Browser tests: a real Chromium (Debian's /usr/bin/chromium) driven by Playwright against
pytest-django's live server.

Without Chromium the tests are skipped with the reason, unless SPYGLASS_REQUIRE_SERVICES=1
(CI), where they fail. Every page a test opens must log no console error and throw no
uncaught exception: the `page` fixture collects both and fails the test on teardown.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; Django's ORM would otherwise refuse
# to run here (SynchronousOnlyOperation) although nothing of ours is async.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        reason = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("SPYGLASS_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (SPYGLASS_REQUIRE_SERVICES=1 forbids skipping)", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server(live_server, transactional_db) -> str:
    """The live server's base URL; rows made in the test are visible to it (committed)."""
    return live_server.url


@pytest.fixture
def page(browser) -> Iterator:
    # A fresh context per test: no localStorage (theme choice) leaks between tests, and the
    # system preference is pinned to light so theme assertions do not depend on the host.
    context = browser.new_context(color_scheme="light")
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            errors.append(f"console: {message.text} ({message.location})")
            if message.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    yield page
    context.close()
    assert errors == [], "the browser reported errors:\n" + "\n".join(errors)
