"""What the OpenAPI document says about errors, declared once for every route.

Every status a route can answer with is declared (the fuzzer, `make fuzz`, fails on any other),
each error as `application/problem+json` with the `Problem` schema that `problems.problem()` writes.
Routes pick their statuses with `responses(...)`: what the guard in front of every /api/v1 route
and alias may answer (401 without a valid key, 403 for a read-only key on a write, 429 over the
rate limit), plus what the route itself may answer.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import msgspec

# Litestar's own struct plugin is not public API; Litestar is pinned (constraints.txt) and
# tests/test_api_openapi.py checks the outcome.
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, Schema
from litestar.params import BodyKwarg
from litestar.typing import FieldDefinition

from queue_system.api.problems import MEDIA_TYPE


class ProblemItem(msgspec.Struct):
    field: str
    message: str


class Problem(msgspec.Struct, kw_only=True):
    """RFC 9457 problem details. `request_id` is the request's `X-Request-ID` (the server's log
    lines about it carry it too). Validation problems add `field` (the first culprit) and `errors`
    (every culprit); an unknown type adds `known_types`; a conflict with an existing task adds
    `location` (also sent as the `Location` header)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    field: str | msgspec.UnsetType = msgspec.UNSET
    errors: list[ProblemItem] | msgspec.UnsetType = msgspec.UNSET
    known_types: list[str] | msgspec.UnsetType = msgspec.UNSET
    location: str | msgspec.UnsetType = msgspec.UNSET
    request_id: str | msgspec.UnsetType = msgspec.UNSET


# Why each status happens, as the operation's documentation shows it.
WHY: dict[int, str] = {
    400: "Malformed request: the body is not JSON, or a query parameter is not in its format "
    "(`created_before=0.5` is not an RFC 3339 date-time with a zone); `field` names it",
    401: "No API key, or not one of API_KEYS/API_READ_KEYS (`Authorization: Bearer <key>` or `X-API-Key`)",
    403: "The key is a read-only key (API_READ_KEYS); this operation changes something",
    404: "No task with that id",
    405: "The id is one of the API's own path words (`batch`, `actions`): no task has it, and that "
    "path takes another method",
    409: "The request clashes with the task's state, or its `id` names a task created with another request",
    413: "The body is larger than API_MAX_BODY_BYTES",
    422: "Well-formed but invalid: `field` names the first culprit, `errors` lists them all",
    429: "Over API_RATE_LIMIT for this key; `Retry-After` says when to try again",
    503: "Redis is unreachable, did not answer in time, or refuses writes (out of memory, a read-only "
    "replica): `title` says which; retry after `Retry-After` seconds with the same `id`",
}

# Statuses the auth guard and the rate limit add to every /api/v1 route and old-system alias.
GUARDED_READ = (401, 429)
GUARDED_WRITE = (401, 403, 429)


def responses(*statuses: int, guard: tuple[int, ...] = ()) -> dict[int, ResponseSpec]:
    """`responses=` of a route decorator: a problem body for each status (plus the guard's)."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            generate_examples=False,
            description=f"{HTTPStatus(status).phrase}. {WHY[status]}",
            media_type=MEDIA_TYPE,
        )
        for status in sorted({*statuses, *guard})
    }


def body_examples(**examples: dict[str, Any]) -> BodyKwarg:
    """A JSON body's documented examples, by name: what a client sends, accepted as shown (the
    fuzzer's example phase sends each, and later steps use the tasks they create)."""
    shown = [Example(summary=name.replace("_", " "), value=value) for name, value in examples.items()]
    return BodyKwarg(examples=shown)


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """Litestar's struct schemas, plus `additionalProperties: false` where the struct refuses
    unknown fields (`forbid_unknown_fields=True`): the document then says what the server does."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        config = getattr(field_definition.type_, "__struct_config__", None)
        if config is not None and config.forbid_unknown_fields:
            schema.additional_properties = False
        return schema
