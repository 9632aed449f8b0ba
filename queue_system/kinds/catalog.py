"""Which kinds a process serves: the built-ins, then the modules listed in TASK_MODULES.

The composition roots (`api/app.py`, `worker/runtime.py`) call `load_kinds(settings)` once and
pass the registry down; kinds that need settings (`email`) are built from them here, so no kind
keeps module-level state.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from queue_system.config.settings import Settings
from queue_system.kinds import utility, webhook
from queue_system.kinds.email import email_kind
from queue_system.kinds.registry import Registry


def load_kinds(settings: Settings, extra_modules: Iterable[str] = ()) -> Registry:
    """The built-in kinds, then every kind marked with `task_kind` in TASK_MODULES (and
    `extra_modules`); a later kind of the same name replaces an earlier one."""
    registry = Registry([email_kind(settings.email)])
    registry.add(webhook.webhook_kind(settings))  # under EGRESS_*, signed with WEBHOOK_SIGNING_SECRET
    registry.add_module(utility)
    for name in (*settings.worker.task_modules, *extra_modules):
        registry.add_module(importlib.import_module(name))
    return registry
