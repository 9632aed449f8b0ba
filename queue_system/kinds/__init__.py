"""Task kinds: `type` -> payload schema + handler + default retry policy."""

from queue_system.kinds.registry import REGISTRY, Registry, RunContext, TaskKind, load_modules, task_kind

__all__ = ["REGISTRY", "Registry", "RunContext", "TaskKind", "load_modules", "task_kind"]
