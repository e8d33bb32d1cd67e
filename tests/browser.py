"""Opening a page deepstrata writes (report, explain, audit) in headless Debian chromium:
what every browser test collects, in one place. Tests import it under their own
``browser`` marker and skip conditions (see ``tests/integration/test_report_browser.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",  # root in a container: chromium's sandbox needs user namespaces
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "build" / "screenshots"


@dataclass
class Visit:
    """What a page did once loaded: console errors, page errors and failed requests
    (``problems``), every URL it asked for, its images as ``[alt, complete, width]``,
    its title, number of sections and visible text."""

    problems: list[str]
    requested: list[str]
    images: list[list]
    title: str
    sections: int
    text: str

    def outside_requests(self) -> list[str]:
        return [url for url in self.requested if not url.startswith(("file:", "data:"))]


def visit(page_file: Path, profile: Path, screenshot: Path | None = None) -> Visit:
    """Open ``page_file`` in a fresh chromium profile at ``profile``; a full-page
    screenshot to ``screenshot`` if given."""
    from playwright import sync_api

    problems: list[str] = []
    requested: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1200, "height": 900},
            timeout=60_000,
        )
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url} {r.failure}"))
            page.on("request", lambda request: requested.append(request.url))
            page.goto(page_file.as_uri(), wait_until="load", timeout=60_000)
            result = Visit(
                problems,
                requested,
                images=page.evaluate(
                    "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"
                ),
                title=page.title(),
                sections=page.evaluate("document.querySelectorAll('section').length"),
                text=page.inner_text("body"),
            )
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return result
