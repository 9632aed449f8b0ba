"""The package's exception tree. The API translates it to HTTP in one place (`api/problems.py`).

QueueSystemError
 +-- ConfigError            a setting is missing or malformed (start-up stops, naming the variable)
 +-- InvalidInput           a request or payload is wrong; `field` names the culprit (-> 400/422)
 |    +-- UnknownTaskType   `type` is not registered (-> 422, lists the known types)
 +-- TaskNotFound           no task with that id (-> 404)
 +-- Conflict               the request clashes with the task's state or an existing id (-> 409)
"""

from __future__ import annotations


class QueueSystemError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(QueueSystemError):
    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


class InvalidInput(QueueSystemError):
    def __init__(self, message: str, *, field: str | None = None, status_code: int = 422) -> None:
        super().__init__(message)
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
    def __init__(self, message: str, *, location: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
