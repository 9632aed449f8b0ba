"""MkDocs hook: the pages generated from the code at build time, so they cannot drift from it.

- `settings.md`: its marker becomes the settings table, rendered by the settings declaration itself
  (`queue_system.config.settings.markdown_table`).
- `api-reference.md`: its marker becomes the OpenAPI document of the app, rendered as Markdown
  (every operation, its parameters, request body and responses; then the schemas), and the document
  itself is written beside the site as `openapi.json`. Nothing is fetched at build or view time.

The functions are plain (text in, text out) so tests/test_docs_site.py calls them directly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SETTINGS_MARKER = "<!-- settings-table -->"
API_MARKER = "<!-- openapi-reference -->"
METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


def settings_table() -> str:
    from queue_system.config.settings import markdown_table

    return markdown_table()


def openapi_document() -> dict[str, Any]:
    """The app's OpenAPI document, as `GET /schema/openapi.json` serves it (no Redis needed: the
    app is built, never started)."""
    from queue_system.api.app import create_app
    from queue_system.config.settings import load_settings

    app = create_app(load_settings({}))
    document: dict[str, Any] = app.openapi_schema.to_schema()
    return document


def _cell(text: object) -> str:
    """One Markdown table cell: no newlines, no bare pipes."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _schema_name(schema: dict[str, Any]) -> str:
    """A short type for a schema: a link to a component, an array of one, or its JSON type."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[`{name}`](#schema-{name.lower()})"
    for combo in ("oneOf", "anyOf"):
        if combo in schema:
            return " or ".join(_schema_name(option) for option in schema[combo])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_schema_name(schema.get('items', {}))}"
    if isinstance(kind, list):
        return " or ".join(f"`{k}`" for k in kind)
    return f"`{kind}`"


def _operation(method: str, path: str, op: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", ""]
    if op.get("summary"):
        lines += [_cell(op["summary"]), ""]
    if op.get("description"):
        lines += [op["description"].strip(), ""]
    params = op.get("parameters", [])
    if params:
        lines += ["| parameter | in | required | type | meaning |", "|---|---|---|---|---|"]
        for p in params:
            required = "yes" if p.get("required") else "no"
            kind = _schema_name(p.get("schema", {}))
            lines.append(
                f"| `{p['name']}` | {p['in']} | {required} | {kind} | {_cell(p.get('description', ''))} |"
            )
        lines.append("")
    body = op.get("requestBody")
    if body:
        for media, content in body.get("content", {}).items():
            lines += [f"Request body (`{media}`): {_schema_name(content.get('schema', {}))}", ""]
    lines += ["| status | meaning | body |", "|---|---|---|"]
    for status, response in op.get("responses", {}).items():
        bodies = ", ".join(
            f"`{media}` {_schema_name(content.get('schema', {}))}"
            for media, content in response.get("content", {}).items()
        )
        lines.append(f"| {status} | {_cell(response.get('description', ''))} | {bodies or '-'} |")
    return [*lines, ""]


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### `{name}` {{ #schema-{name.lower()} }}", ""]
    if schema.get("description"):
        lines += [_cell(schema["description"]), ""]
    props = schema.get("properties", {})
    if not props:
        return [*lines, f"Type: {_schema_name(schema)}", ""]
    required = set(schema.get("required", []))
    lines += ["| field | type | required | meaning |", "|---|---|---|---|"]
    for field, spec in props.items():
        need = "yes" if field in required else "no"
        lines.append(f"| `{field}` | {_schema_name(spec)} | {need} | {_cell(spec.get('description', ''))} |")
    return [*lines, ""]


def render_openapi(document: dict[str, Any]) -> str:
    """The document as Markdown: operations grouped by path, then the component schemas."""
    info = document.get("info", {})
    lines = [f"OpenAPI {document.get('openapi', '')}, {info.get('title', '')} {info.get('version', '')}.", ""]
    lines += ["## Operations", ""]
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                lines += _operation(method, path, item[method])
    schemas = document.get("components", {}).get("schemas", {})
    if schemas:
        lines += ["## Schemas", ""]
        for name in sorted(schemas):
            lines += _schema(name, schemas[name])
    return "\n".join(lines)


def fill(markdown: str, src_uri: str) -> str:
    """A page's Markdown with its generated part in place of the marker."""
    if src_uri == "settings.md":
        assert SETTINGS_MARKER in markdown, "docs/settings.md lost its settings-table marker"
        return markdown.replace(SETTINGS_MARKER, settings_table())
    if src_uri == "api-reference.md":
        assert API_MARKER in markdown, "docs/api-reference.md lost its openapi-reference marker"
        return markdown.replace(API_MARKER, render_openapi(openapi_document()))
    return markdown


# ---- the MkDocs events (https://www.mkdocs.org/user-guide/configuration/#hooks)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return fill(markdown, page.file.src_uri)


def on_post_build(config: Any) -> None:
    """The OpenAPI document beside the rendered reference, for tools that want the JSON."""
    target = Path(config["site_dir"]) / "openapi.json"
    target.write_text(json.dumps(openapi_document(), indent=2) + "\n")
