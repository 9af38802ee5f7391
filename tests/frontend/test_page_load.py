"""Loading the page asks for nothing that fails: no 404 in the console of every visitor (a
browser asks for /favicon.ico unless the page names an icon; neither the local server nor
the page's S3 bucket behind CloudFront has one)."""

from __future__ import annotations

from typing import Any

from tests.frontend.conftest import close_page, new_page


def test_the_landing_page_loads_without_a_failed_request(browser: Any, server: str) -> None:
    page = new_page(browser, server)
    page.wait_for_load_state("networkidle")  # the first load's requests end before the second
    failed: list[str] = []
    errors: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("requestfailed", lambda r: failed.append(f"failed {r.url}"))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(server)
    page.wait_for_load_state("networkidle")
    close_page(page)
    assert failed == []
    assert errors == []
