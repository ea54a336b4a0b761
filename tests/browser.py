"""A real browser for the page tests: Debian's Chromium driven by Playwright (no downloaded browser).

``.ci/run`` installs ``chromium`` and ``chromium-driver`` from Debian; Playwright's own browser
download is never used (``executable_path`` points at the system Chromium). Chromium runs headless
with its background networking off, so the only connections it makes are the page's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-features=MediaRouter,OptimizationHints,Translate"]
PHONE = {"width": 412, "height": 915}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless Debian Chromium (module scope: one browser, a new page per test)."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium and chromium-driver (.ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Traffic:
    """Every request and WebSocket a page opens (to prove nothing comes from outside the device)."""

    def __init__(self, page) -> None:
        self.requests: list[str] = []
        self.sockets: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("websocket", lambda socket: self.sockets.append(socket.url))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def foreign(self, origin: str) -> list[str]:
        """URLs that are not on ``origin`` (``http://host:port``) or its WebSocket."""
        socket_origin = "ws" + origin[len("http"):]
        return [url for url in self.requests if not url.startswith(origin + "/")] + \
               [url for url in self.sockets if not url.startswith(socket_origin + "/")]
