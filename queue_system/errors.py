"""The package's exception tree. The API translates it to HTTP in one place (`api/problems.py`).

    QueueSystemError
     +-- ConfigError            a setting is missing or malformed (start-up stops, naming the variable)
 |    +-- LayoutError       REDIS_URL's Redis has a key layout this release cannot use (start-up stops)
     +-- InvalidInput           a request or payload is wrong: `field` names the culprit, `message`
     |    |                     says what is wrong; kept apart until problems.py renders them (-> 400/422)
     |    +-- UnknownTaskType   `type` is not registered (-> 422, lists the known types)
     +-- TaskNotFound           no task with that id (-> 404)
     +-- Conflict               the request clashes with the task's state or an existing id (-> 409)

    HandlerError                raised by a task kind's handler, never seen by the API
     +-- TransientError         this attempt failed, a later one may succeed (retried by the policy)
     +-- PermanentError         retrying cannot help: the task fails now

Handlers import the last two from `queue_system.kinds`; any other exception a handler raises
counts as transient.
"""

from __future__ import annotations


class QueueSystemError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(QueueSystemError):
    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


class LayoutError(ConfigError):
    """The Redis holds a newer (or unknown) key layout, or its upgrade could not finish."""

    def __init__(self, message: str) -> None:
        super().__init__("REDIS_URL", message)


class InvalidInput(QueueSystemError):
    """`field` is a path as the client wrote it (`payload.to[1]`), or None for the request as a whole."""

    def __init__(self, message: str, *, field: str | None = None, status_code: int = 422) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.message = message
        self.field = field
        self.status_code = status_code


class UnknownTaskType(InvalidInput):
    def __init__(self, type_: str, known: list[str]) -> None:
        super().__init__(f"unknown task type {type_!r}; known types: {', '.join(known)}", field="type")
        self.known = known


class TaskNotFound(QueueSystemError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task with id {task_id!r}")
        self.task_id = task_id


class Conflict(QueueSystemError):
    """`task_id`: the existing task the request clashed with, when there is one (-> `Location`)."""

    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.task_id = task_id


class HandlerError(Exception):
    """Raised by a handler to say how its attempt ended (not a QueueSystemError: the API never sees it)."""


class TransientError(HandlerError):
    """This attempt failed, a later one may succeed."""


class PermanentError(HandlerError):
    """Retrying cannot help: fail the task now."""
