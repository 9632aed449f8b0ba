"""The package's exception tree. The API translates it to HTTP in one place (`api/problems.py`).

    QueueSystemError
     +-- ConfigError            a setting is missing or malformed (start-up stops, naming the variable)
 |    +-- LayoutError       REDIS_URL's Redis has a key layout this release cannot use (start-up stops)
     +-- InvalidInput           a request or payload is wrong: `field` names the culprit, `message`
     |    |                     says what is wrong; kept apart until problems.py renders them (-> 400/422)
     |    +-- UnknownTaskType   `type` is not registered (-> 422, lists the known types)
     +-- NotFound               no record with that id (-> 404)
     |    +-- TaskNotFound      no task with that id
     |    +-- ScheduleNotFound  no schedule with that id
     |    +-- QueueNotFound     no queue with that name (domain/queues.py QUEUES)
     |    +-- OperationNotFound no bulk operation with that id (or it expired)
     +-- Conflict               the request clashes with the task's state or an existing id (-> 409)
     |    +-- LimitReached      a create beyond a count limit (`setting` names it, `limit` its value)
     +-- StorageError           Redis did not do what was asked; storage/failures.py turns redis-py's
          |                     errors into these (`classify`), `reason` says why in Redis's words
          +-- StorageUnavailable    not now: retry later with the same id (-> 503 + Retry-After)
          |    +-- RedisUnreachable     no connection, no reply in time, loading its data, busy
          |    +-- RedisNotReplicated   written, but fewer replicas than REDIS_MIN_REPLICAS confirmed
          |    +-- RedisRefusesWrites   it answers but refuses writes: cannot persist (MISCONF)
          |         +-- RedisOutOfMemory    maxmemory reached under `noeviction` (OOM)
          |         +-- RedisReadOnly       a read-only replica (READONLY)
          +-- StorageFault          a script error, WRONGTYPE, any other error reply: a bug or damaged
                                    data, not the client's doing and not cured by waiting (-> 500,
                                    logged with the request id; the client sees a generic detail)

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


class NotFound(QueueSystemError):
    """No record with that id (-> 404); the message names what was looked for."""


class TaskNotFound(NotFound):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task with id {task_id!r}")
        self.task_id = task_id


class ScheduleNotFound(NotFound):
    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"no schedule with id {schedule_id!r}")
        self.schedule_id = schedule_id


class QueueNotFound(NotFound):
    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__(f"no queue named {name!r}; the queues are: {', '.join(known)}")
        self.name = name


class OperationNotFound(NotFound):
    def __init__(self, operation_id: str) -> None:
        super().__init__(f"no operation with id {operation_id!r}")
        self.operation_id = operation_id


class Conflict(QueueSystemError):
    """`task_id`: the existing task the request clashed with, when there is one (-> `Location`)."""

    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.task_id = task_id


class LimitReached(Conflict):
    """A create that would pass a count limit (SCHEDULES_MAX): 409 until one is deleted."""

    def __init__(self, message: str, *, setting: str, limit: int) -> None:
        super().__init__(message)
        self.setting = setting
        self.limit = limit


class StorageError(QueueSystemError):
    """`reason`: what Redis said, for logs and readiness; never shown to a client as a 500's detail."""

    summary = "Redis failed the operation"

    def __init__(self, reason: str) -> None:
        super().__init__(f"{self.summary}: {reason}")
        self.reason = reason


class StorageUnavailable(StorageError):
    """Transient for the client: the same request may succeed later."""

    retry_after_s = 1


class RedisUnreachable(StorageUnavailable):
    summary = "Redis is unreachable"


class RedisNotReplicated(StorageUnavailable):
    """The write landed on the primary, but `WAIT` saw fewer replicas acknowledge it in time: a
    failover now could lose it. The client's retry with the same id is safe (create is idempotent)."""

    summary = "too few Redis replicas confirmed the write"


class RedisRefusesWrites(StorageUnavailable):
    summary = "Redis refuses writes"
    retry_after_s = 5  # an operator (or a failover) has to act first: a 1 s retry only adds load


class RedisOutOfMemory(RedisRefusesWrites):
    summary = "Redis is out of memory (maxmemory reached)"


class RedisReadOnly(RedisRefusesWrites):
    summary = "Redis is a read-only replica"


class StorageFault(StorageError):
    summary = "storage error"


class HandlerError(Exception):
    """Raised by a handler to say how its attempt ended (not a QueueSystemError: the API never sees it)."""


class TransientError(HandlerError):
    """This attempt failed, a later one may succeed."""


class PermanentError(HandlerError):
    """Retrying cannot help: fail the task now."""
