"""Task kinds: `type` -> payload schema + handler + default retry policy.

Everything a user's own kind needs is exported here (docs/task-kinds.md, "Your own task kinds"):
`task_kind`, `RunContext`, `TransientError`, `PermanentError`, `backoff_policy`, `fixed_policy`,
and `InvalidInput` for a `check=` function that rejects a payload.
`load_kinds(settings)` builds the registry a process serves.
"""

from queue_system.errors import InvalidInput, PermanentError, TransientError
from queue_system.kinds.catalog import load_kinds
from queue_system.kinds.registry import (
    Registry,
    RunContext,
    TaskKind,
    backoff_policy,
    fixed_policy,
    task_kind,
)

__all__ = [
    "InvalidInput",
    "PermanentError",
    "Registry",
    "RunContext",
    "TaskKind",
    "TransientError",
    "backoff_policy",
    "fixed_policy",
    "load_kinds",
    "task_kind",
]
