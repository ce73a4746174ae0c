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


def open_page(browser, tolerate: tuple[str, ...] = ()) -> Iterator:
    """A page in a fresh context that fails the test on teardown if the browser reported a
    console error or an uncaught exception, except console errors containing `tolerate`."""
    # A fresh context per test: no localStorage (theme choice) leaks between tests, and the
    # system preference is pinned to light so theme assertions do not depend on the host.
    context = browser.new_context(color_scheme="light")
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []

    def on_console(message) -> None:
        if message.type == "error" and not any(text in message.text for text in tolerate):
            errors.append(f"console: {message.text} ({message.location})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    yield page
    context.close()
    assert errors == [], "the browser reported errors:\n" + "\n".join(errors)


@pytest.fixture
def page(browser) -> Iterator:
    yield from open_page(browser)


@pytest.fixture
def page_with_refusals(browser) -> Iterator:
    """`page`, for tests that provoke a 422 on purpose (a form or a refusal shown in place,
    which the browser logs as a failed request); any other console error still fails."""
    yield from open_page(browser, tolerate=("status of 422",))
