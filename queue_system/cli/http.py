"""The HTTP side of the `queue-system` client commands: the client options, one `Api` client per
command run, and the errors that carry the documented exit codes (see `queue_system.cli.client`)."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import click
import httpx
from click.core import ParameterSource

from queue_system.config.settings import ApiSettings, api_url_from, data_dir_from
from queue_system.errors import ConfigError
from queue_system.local import run_state

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_UNAUTHORIZED = 5
EXIT_UNREACHABLE = 6
EXIT_ABORTED = 7

URL_VARIABLE = "QUEUE_SYSTEM_URL"


def segment(value: str, what: str) -> str:
    """An id or name from the command line as one URL path segment. Escaped, so `?`, `#` and `%`
    stay inside it (unescaped, `schedules delete 'a?x'` deleted schedule `a`); ``, `.`, `..` and
    anything with `/` are refused (exit 2): a client rewrites the first three into another URL
    (`show .` read the list), and the server decodes `%2F` before routing (`a/` reached `a`)."""
    if value in ("", ".", ".."):
        raise click.BadParameter(f"{value!r} cannot be a {what}: HTTP clients rewrite it in a URL")
    if "/" in value:  # the server decodes %2F before routing: `a/` would reach `a`
        raise click.BadParameter(f"a {what} has no '/': {value!r}")
    return quote(value, safe="")


class CliError(click.ClickException):
    """A request failed or the API answered with an error; click prints `Error: <message>` on stderr
    and exits with the class's code."""

    exit_code = EXIT_API_ERROR


class NotFound(CliError):
    exit_code = EXIT_NOT_FOUND


class Conflict(CliError):
    exit_code = EXIT_CONFLICT


class Unauthorized(CliError):
    exit_code = EXIT_UNAUTHORIZED


class Unreachable(CliError):
    exit_code = EXIT_UNREACHABLE


class Aborted(CliError):
    exit_code = EXIT_ABORTED


_BY_STATUS: dict[int, type[CliError]] = {401: Unauthorized, 403: Unauthorized, 404: NotFound, 409: Conflict}


@dataclass(frozen=True)
class Options:
    url: str
    api_key: str | None
    timeout: float
    as_json: bool
    url_from: str = "--url"  # why this URL: the option, QUEUE_SYSTEM_URL, or the server's settings
    key_from: str | None = None  # --api-key or QUEUE_SYSTEM_API_KEY (never the key itself)


class Api:
    """One HTTP client per command run; failures become `CliError`s with their exit codes."""

    def __init__(self, opts: Options) -> None:
        headers = {"Accept": "application/json", "User-Agent": "queue-system-cli"}
        if opts.api_key:
            headers["Authorization"] = f"Bearer {opts.api_key}"
        self.opts = opts
        self.client = httpx.Client(base_url=opts.url, headers=headers, timeout=opts.timeout)

    def __enter__(self) -> Api:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.client.close()

    def call(
        self, method: str, path: str, *, params: Any = None, body: Any = None, missing: str | None = None
    ) -> httpx.Response:
        """-> the 2xx response. `missing` replaces the message of a 404 (an endpoint the server lacks)."""
        where = self.opts.url
        try:
            response = self.client.request(method, path, params=params, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise Unreachable(f"cannot reach the server at {where}: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise CliError(f"no answer from {where} within {self.opts.timeout:g}s (--timeout)") from exc
        except httpx.TransportError as exc:
            raise CliError(f"request to {where} failed: {exc}") from exc
        if response.is_success:
            return response
        if response.status_code == 404 and missing:
            raise NotFound(f"{missing} ({method} {path} answered 404)")
        raise _BY_STATUS.get(response.status_code, CliError)(self._problem(response))

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.call(method, path, **kwargs).json()

    def _problem(self, response: httpx.Response) -> str:
        """An RFC 9457 problem (`detail`, `field`, ...) or the start of whatever else came back."""
        message = f"{response.status_code} {response.reason_phrase}"
        try:
            problem = response.json()
        except ValueError:
            problem = None
        if not isinstance(problem, dict):
            text = " ".join(response.text.split())[:200]
            return f"{message}: {text}" if text else message
        detail, field = problem.get("detail"), problem.get("field")
        if detail:
            message += f": {detail}"
        if field and not str(detail or "").startswith(f"{field}:"):
            message += f" (field: {field})"
        if problem.get("known_types") and "known types" not in str(detail):
            message += f"; known types: {', '.join(map(str, problem['known_types']))}"
        if problem.get("location"):
            message += f"; existing task: {problem['location']}"
        if response.status_code in (401, 403):
            message += (
                "; check --api-key / QUEUE_SYSTEM_API_KEY"
                if self.opts.api_key
                else ("; this server needs an API key: --api-key or QUEUE_SYSTEM_API_KEY")
            )
        return message


DEFAULT_URL = ApiSettings().local_url  # http://127.0.0.1:8080


def default_url(env: Mapping[str, str]) -> tuple[str, str]:
    """Where the client commands point when neither --url nor QUEUE_SYSTEM_URL says -> (url, why):
    the server's own API_HOST/API_PORT when set; else the address a live `make run` in this
    directory wrote (`{DATA_DIR}/run.json`, run_state.py); else the server's default."""
    try:
        from_settings = api_url_from(env)
        data_dir = data_dir_from(env)
    except ConfigError as exc:
        raise click.BadParameter(f"no --url or {URL_VARIABLE}, and {exc}") from None
    if from_settings is not None:
        return from_settings
    running = run_state.read(data_dir)
    if running is not None:
        return running.api_url, f"from {running.path}: `queue-system run` (pid {running.pid}) serves there"
    return DEFAULT_URL, "the server's default (API_HOST, API_PORT unset; no `make run` state here)"


def _check_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    """The URL given (`--url`, QUEUE_SYSTEM_URL), else `default_url`."""
    if value is None:
        value, _ = default_url(os.environ)
    if not value.startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://")
    return value.rstrip("/")


def _source(ctx: click.Context, name: str, option: str, variable: str) -> str | None:
    source = ctx.get_parameter_source(name)
    if source is ParameterSource.COMMANDLINE:
        return option
    if source is ParameterSource.ENVIRONMENT:
        return variable
    return None


_CLIENT_OPTIONS = (
    click.option(
        "--url", envvar=URL_VARIABLE, show_envvar=True, callback=_check_url,
        help="The API's base URL [default: from API_HOST and API_PORT as the server reads them, else "
        "a running `queue-system run` in this directory, else http://127.0.0.1:8080].",
    ),
    click.option(
        "--api-key", envvar="QUEUE_SYSTEM_API_KEY", show_envvar=True,
        help="Sent as `Authorization: Bearer <key>`; never printed.",
    ),
    click.option(
        "--timeout", type=click.FloatRange(min=0.1, max=600), default=10.0, show_default=True,
        help="Seconds to wait for each request.",
    ),
    click.option("--json", "as_json", is_flag=True, help="Print one JSON document (for scripts)."),
)  # fmt: skip


def client_command(f: Callable[..., None]) -> Callable[..., None]:
    """Adds the client options (after the command's own in --help: put it right above the `def`);
    the command gets them as one `Options` first argument."""

    @functools.wraps(f)
    def wrapper(url: str, api_key: str | None, timeout: float, as_json: bool, **kwargs: Any) -> None:
        ctx = click.get_current_context()
        url_from = _source(ctx, "url", "--url", URL_VARIABLE)
        if url_from is None:
            url_from = default_url(os.environ)[1]
        key_from = _source(ctx, "api_key", "--api-key", "QUEUE_SYSTEM_API_KEY") if api_key else None
        opts = Options(url, api_key, timeout, as_json, url_from=url_from, key_from=key_from)
        f(opts, **kwargs)

    for option in reversed(_CLIENT_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def confirm(question: str) -> None:
    """Ask on stderr (stdout stays clean for --json); anything but yes aborts with EXIT_ABORTED."""
    try:
        yes = click.confirm(question, default=False, err=True)
    except click.Abort:  # end of input (a script without --yes) or Ctrl-C at the prompt
        yes = False
    if not yes:
        raise Aborted("aborted: nothing was deleted")
