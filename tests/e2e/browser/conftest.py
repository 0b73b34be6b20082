"""Playwright driving Debian's headless chromium against the e2e platform (tests/e2e/conftest.py).

One browser per session, a fresh context (own sessionStorage, so its own login) per page. A
failed test leaves a screenshot of each of its pages in .attune/browser-failures/; with
ATTUNE_CONSOLE_SCREENSHOTS=1 the tests also write docs/console/*.png (docs/console.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.e2e import PASSWORD, PROJECT_ROOT, ApiClient

CHROMIUM = os.environ.get("ATTUNE_CHROMIUM", "/usr/bin/chromium")  # scripts/lib.sh ensure_browser
FAILURES = PROJECT_ROOT / ".attune" / "browser-failures"
DOCS_SCREENSHOTS = PROJECT_ROOT / "docs" / "console"
WAIT_MS = 30_000  # how long an expectation waits for the page to show what it should

expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs it (ensure_browser)")
    # Not stopped with `with`/stop(): under the suite's eventlet monkey-patching (tests/conftest.py)
    # playwright's stop waits for its driver's exit news forever. Closing the browser is enough:
    # the driver ends with this process, when its stdin closes.
    playwright = sync_playwright().start()
    # --no-sandbox: the tests run as root, where chromium's own sandbox refuses to start.
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox"])
    yield browser
    browser.close()


@pytest.fixture
def open_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Callable[[], Page]]:
    """Factory: a new page in a context of its own (a second user is a second context)."""
    contexts = []

    def make() -> Page:
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        contexts.append(context)
        return context.new_page()

    request.node.console_contexts = contexts
    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(open_page: Callable[[], Page]) -> Page:
    return open_page()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    """A failed browser test leaves a screenshot of each of its pages, named after the test."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    FAILURES.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", item.nodeid.split("::", 1)[-1])
    shots = []
    for n, context in enumerate(getattr(item, "console_contexts", [])):
        for m, page in enumerate(context.pages):
            path = FAILURES / f"{name}-{n}-{m}.png"
            try:
                page.screenshot(path=str(path), full_page=True)
                shots.append(f"{path} ({page.url})")
            except Exception as exc:  # a crashed page: say so, keep the report
                shots.append(f"{path}: no screenshot ({exc})")
    if shots:
        report.sections.append(("browser screenshots", "\n".join(shots)))


@pytest.fixture
def document_screenshot() -> Callable[[Page, str], None]:
    """`document_screenshot(page, "executions")` writes docs/console/executions.png when
    ATTUNE_CONSOLE_SCREENSHOTS=1 (how docs/console.md's pictures are made)."""

    def shoot(page: Page, name: str) -> None:
        if os.environ.get("ATTUNE_CONSOLE_SCREENSHOTS") == "1":
            DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(DOCS_SCREENSHOTS / f"{name}.png"), full_page=False)

    return shoot


def log_in(page: Page, api_url: str, client: ApiClient, path: str = "/ui/executions") -> Page:
    """Open `path` and log in through the form as `client`'s user."""
    page.goto(f"{api_url}{path}")
    page.get_by_label("Username").fill(client.user["username"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#who")).to_have_text(
        f"{client.user['username']} ({client.user['role']})")
    return page
