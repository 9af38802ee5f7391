"""The page at a phone's width (390 CSS px) and a laptop's (1280): nothing wider than the
window (no sideways scrolling), and every control on screen can be reached: inside the window
and not covered by anything else at its centre."""

from __future__ import annotations

from typing import Any

import pytest

from tests.frontend.conftest import close_page, new_page, search, shot, wait_idle

WIDTHS = [390, 1280]
CONTROLS = [
    "#query",
    "#top-k",
    "#search-button",
    "input[name=scene]",
    ".example",
    "#image-file",
    "#negative",
    "#query-image-remove",
    "#facets button",
    "#filter-clear",
    "#active-filters button",
    "#scene-filters input",
    "#scene-filters select",
    "#results button",
    "#more",
    "#viewer button",
    "#viewer a",
    "#debug summary",
    "#debug select",
]
# Elements wider than the window, and the window's scroll width (should be the window's).
OVERFLOW = """() => ({
  scrollWidth: document.scrollingElement.scrollWidth,
  innerWidth: window.innerWidth,
  wide: [...document.querySelectorAll('body *')]
    .filter((e) => e.checkVisibility() && e.getBoundingClientRect().right > innerWidth + 0.5)
    .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`).slice(0, 10),
})"""
# Each visible control scrolled into view: inside the window and on top at its centre.
REACHABLE = """(selectors) => selectors.flatMap((selector) =>
  [...document.querySelectorAll(selector)].filter((e) => e.checkVisibility()).map((e) => {
    e.scrollIntoView({ block: 'center', inline: 'nearest' });
    const box = e.getBoundingClientRect();
    const top = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
    const labels = [...(e.labels ?? [])];
    const onTop = top === e || e.contains(top) || labels.some((l) => l.contains(top));
    return {
      control: `${selector} ${e.id || e.textContent.trim().slice(0, 30)}`,
      inside: box.left >= -0.5 && box.right <= innerWidth + 0.5 && box.width > 0,
      onTop,
    };
  }))"""


def check_layout(page: Any, name: str, controls: list[str] = CONTROLS) -> int:
    """Assert no sideways overflow and every visible control of `controls` reachable;
    returns how many were checked."""
    overflow = page.evaluate(OVERFLOW)
    assert overflow["scrollWidth"] <= overflow["innerWidth"], (name, overflow)
    controls = page.evaluate(REACHABLE, controls)
    unreachable = [c for c in controls if not (c["inside"] and c["onTop"])]
    assert unreachable == [], (name, unreachable)
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, f"layout-{name}")
    return len(controls)


@pytest.mark.parametrize("width", WIDTHS)
def test_demo_tabs_fit_the_window_and_every_control_is_reachable(
    browser: Any, server: str, width: int
) -> None:
    page = new_page(browser, f"{server}/?debug=1", viewport={"width": width, "height": 800})
    page.wait_for_selector("#debug-layers option:nth-child(2)", state="attached")
    assert check_layout(page, f"{width}-landing") >= 8
    page.click("#debug summary")
    search(page, "a large animal with a trunk")
    assert page.locator("#facets").is_visible()
    check_layout(page, f"{width}-questions")
    page.locator("#facets button.facet").first.click()
    wait_idle(page)
    check_layout(page, f"{width}-questions-filtered")
    page.check("input[name=scene][value=images]")
    search(page, "an animal")
    assert page.locator(".image-hit").count() == 10
    check_layout(page, f"{width}-images")
    page.fill("#negative", "a penguin")
    page.locator(".more-like").first.click()  # the attached-image chip and "But not"
    page.wait_for_function(
        "() => document.querySelector('#status').textContent.includes('but not')"
    )
    wait_idle(page)
    assert page.locator("#query-image-remove").is_visible()
    check_layout(page, f"{width}-images-mixed")
    page.locator(".image-open").first.click()
    page.wait_for_function("() => document.querySelector('#viewer-image').naturalWidth > 0")
    # A modal view: the page under it is inert, its own controls are what must be reachable.
    assert check_layout(page, f"{width}-viewer", ["#viewer button", "#viewer a"]) >= 3
    close_page(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_declared_scene_fits_the_window_with_its_filters(
    browser: Any, server: str, catalogue: list[Any], width: int
) -> None:
    url = f"{server}/?tab=catalogue&q=a+kettle&f.brand=Cobalt&f.price=10..200"
    page = new_page(browser, url, viewport={"width": width, "height": 800})
    wait_idle(page)
    assert page.locator("#results .doc-hit").count() == 10
    assert page.locator("#active-filters .filter-chip").is_visible()
    assert check_layout(page, f"{width}-catalogue-filtered") >= 20
    page.locator("#active-filters .filter-chip").click()
    wait_idle(page)
    assert page.locator("#facets .facet").count() >= 2
    check_layout(page, f"{width}-catalogue")
    close_page(page)
