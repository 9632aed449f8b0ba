"""How a setting is declared: once, as a field of a frozen settings dataclass.

    port: int = setting("API_PORT", integer(1, 65535), "8080", "the API's port")

`setting()` returns a `dataclasses.Field` whose default is the parsed `"8080"` and whose metadata is
a `Setting`: the variable, its parser (with its bounds), its default as written in the environment,
its help, whether it is a secret. The field's name and type say where the value lands in the
Settings tree; the Setting says where it comes from. Nothing is spelled twice: the loader
(`read_fields`), SPEC and the settings page (`markdown_table`) walk the same fields (`declared`),
and mypy holds the parser's type to the field's (`Parser[int]` for an `int`).

`group()` nests a settings class (`Settings.api`). A setting may name `parts`: a settings class of
variables that build its value when it is unset (REDIS_URL from REDIS_ADDR, ...); they are declared
the same way, listed right after it, and read only by whoever builds the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any, Generic, TypeVar, overload

from queue_system.config.parsing import Parser
from queue_system.errors import ConfigError

T = TypeVar("T")
U = TypeVar("U")
G = TypeVar("G")

SETTING = "queue_system.config.setting"  # the metadata keys of a declared field
GROUP = "queue_system.config.group"
# Some parsers (rates, CIDRs, signing secrets) start their message with a variable's name: the
# Setting puts its own name there instead, once.
_NAMED = re.compile(r"^(?:[A-Z][A-Z0-9_]*)?: ")


@dataclass(frozen=True, slots=True)
class Setting(Generic[T]):
    """One environment variable, as its field declares it."""

    name: str
    parser: Parser[T]
    default: str | None  # as it would be written in the environment; None: unset
    help: str
    secret: bool = False  # never in a repr (nor a log line)
    unset: Any = None  # the value when unset and there is no default
    parts: type | None = None  # a settings class whose variables build the value when this is unset

    def value(self, raw: str | None) -> Any:
        """Parse `raw` (None or '' for unset). Raises ConfigError naming the variable, and only that."""
        source = raw if raw not in (None, "") else self.default
        if source is None:
            return self.unset
        try:
            return self.parser.parse(source)
        except ValueError as exc:  # also what int() or Path() raise: bounded parsers raise only this
            raise ConfigError(self.name, _NAMED.sub("", str(exc), count=1)) from None


@overload
def setting(name: str, parser: Parser[T], default: str, help: str, *, secret: bool = False) -> T: ...
@overload
def setting(
    name: str,
    parser: Parser[T],
    default: None,
    help: str,
    *,
    secret: bool = False,
    parts: type | None = None,
) -> T | None: ...
@overload
def setting(
    name: str, parser: Parser[T], default: None, help: str, *, unset: U, secret: bool = False
) -> T | U: ...
def setting(
    name: str,
    parser: Parser[Any],
    default: str | None,
    help: str,
    *,
    unset: Any = None,
    secret: bool = False,
    parts: type | None = None,
) -> Any:
    """A settings field: `name` parsed by `parser`; `default` as written in the environment (None:
    unset, the value is `unset`); `help` for the settings page; `secret`: left out of the repr."""
    declared = Setting(name, parser, default, help, secret, unset, parts)
    return field(default=declared.value(None), repr=not secret, metadata={SETTING: declared})


def group(cls: type[G]) -> G:
    """A nested settings class (`api: ApiSettings = group(ApiSettings)`), its defaults by default."""
    return field(default_factory=cls, metadata={GROUP: cls})


def _settings_of(cls: type) -> Iterator[tuple[Field[Any], Setting[Any] | None, type | None]]:
    for f in fields(cls):
        yield f, f.metadata.get(SETTING), f.metadata.get(GROUP)


def declared(cls: type) -> Iterator[Setting[Any]]:
    """Every setting of `cls` and of its groups (and parts), in declaration order."""
    for _, one, nested in _settings_of(cls):
        if one is not None:
            yield one
            if one.parts is not None:
                yield from declared(one.parts)
        elif nested is not None:
            yield from declared(nested)


def attribute_paths(cls: type, prefix: str = "") -> dict[str, str]:
    """Variable -> where it lands (`API_PORT` -> `api.port`); parts -> `<path> (REDIS_URL unset)`."""
    paths: dict[str, str] = {}
    for f, one, nested in _settings_of(cls):
        if one is not None:
            paths[one.name] = prefix + f.name
            if one.parts is not None:
                paths |= {name: f"{prefix}{f.name} ({one.name} unset)" for name in names(one.parts)}
        elif nested is not None:
            paths |= attribute_paths(nested, f"{prefix}{f.name}.")
    return paths


def names(cls: type) -> list[str]:
    return [one.name for one in declared(cls)]


def read_fields(cls: type, env: Mapping[str, str]) -> dict[str, Any]:
    """The keyword arguments of `cls` from `env`: each setting parsed, each group built."""
    values: dict[str, Any] = {}
    for f, one, nested in _settings_of(cls):
        if one is not None:
            values[f.name] = one.value(env.get(one.name))
        elif nested is not None:
            values[f.name] = nested(**read_fields(nested, env))
    return values


def setting_of(cls: type, attribute: str) -> Setting[Any]:
    """The declaration of one field (`setting_of(ApiSettings, "port").name == "API_PORT"`)."""
    for f, one, _ in _settings_of(cls):
        if f.name == attribute and one is not None:
            return one
    raise KeyError(f"{cls.__name__}.{attribute} is not a setting")


def read(cls: type, attribute: str, env: Mapping[str, str]) -> Any:
    """One field's value from `env`, the others not read (nor checked)."""
    one = setting_of(cls, attribute)
    return one.value(env.get(one.name))


def markdown_table(cls: type) -> str:
    """The settings page's table: every setting of `cls`, in declaration order."""
    rows = ["| variable | default | allowed | meaning |", "|---|---|---|---|"]
    for one in declared(cls):
        default = "unset" if one.default is None else f"`{one.default}`"
        rows.append(f"| `{one.name}` | {default} | {one.parser.allowed} | {one.help} |")
    return "\n".join(rows)
