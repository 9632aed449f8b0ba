"""The docs site's generated pages and the README's links (`make docs` builds the site with --strict,
which checks the site's own links and anchors; the README is read on GitHub, so it is checked here).

- the settings page, as the build renders it, has a row for every setting of the declaration;
- the API reference, as the build renders it, has every operation of the app's OpenAPI document;
- every relative link of README.md names a file of the repository, and every #anchor a heading (or
  an explicit id) of the page it points into.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from docs.hooks import pages
from queue_system.config.settings import SPEC

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def rendered(name: str) -> str:
    return pages.fill((DOCS / name).read_text(), name)


def test_the_settings_page_has_every_setting() -> None:
    page = rendered("settings.md")
    rows = {m.group(1) for m in re.finditer(r"^\| `([A-Z0-9_]+)` \|", page, re.M)}
    missing = [var.name for var in SPEC if var.name not in rows]
    assert not missing, f"settings missing from docs/settings.md: {missing}"
    assert pages.settings_table() in page  # the declaration's own rendering, whole and in order


def test_a_settings_page_without_its_marker_fails_the_build() -> None:
    with pytest.raises(AssertionError, match="settings-table marker"):
        pages.fill("# Settings\n\nno table here\n", "settings.md")


def test_the_api_reference_has_every_operation() -> None:
    document = pages.openapi_document()
    page = rendered("api-reference.md")
    for path, item in document["paths"].items():
        for method in pages.METHODS:
            if method in item:
                assert f"### `{method.upper()} {path}`" in page
    assert "### `POST /api/v1/tasks`" in page
    for name in document["components"]["schemas"]:
        assert f"#schema-{name.lower()}" in page


def slug(heading: str) -> str:
    """The anchor GitHub and MkDocs' toc give a heading: lower case, punctuation gone, spaces as -."""
    text = re.sub(r"[`*_]|\{[^}]*\}", "", heading).strip().lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)  # no headings in code
    found = {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}
    return found | set(re.findall(r"\{ ?#([\w-]+)", text))


def test_every_link_of_the_readme_resolves() -> None:
    readme = ROOT / "README.md"
    links = LINK.findall(readme.read_text())
    assert len(links) >= 10, links
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue  # outside the repository: not reachable from here
        target, _, anchor = link.partition("#")
        page = (readme.parent / target).resolve() if target else readme
        assert page.exists(), f"README links to {link}: no such file"
        if anchor:
            assert anchor in anchors(page), f"README links to {link}: no such heading"


def test_the_anchor_rule_matches_the_headings_we_write() -> None:
    assert slug("When a destination is down") == "when-a-destination-is-down"
    assert slug("`POST /api/v1/tasks`") == "post-apiv1tasks"
    assert "when-a-destination-is-down" in anchors(DOCS / "concepts.md")
