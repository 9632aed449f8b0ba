"""`create_app(settings)`: the Litestar application, its Redis client owned by the lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from litestar import Litestar
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from loguru import logger

from queue_system import __version__
from queue_system.api import problems, request_ids
from queue_system.api.auth import AccessRefused, build_guard, on_access_refused
from queue_system.api.batch import submit_batch
from queue_system.api.body import BodyRequest
from queue_system.api.compat import compat_router
from queue_system.api.dashboard import dashboard_router
from queue_system.api.dashboard.auth import Sessions
from queue_system.api.destinations import list_destinations
from queue_system.api.headers import security_headers
from queue_system.api.inbox import inbox_router
from queue_system.api.keys import KeyRing
from queue_system.api.metrics import count_rejections, http_metrics, metrics
from queue_system.api.openapi import StrictStructSchemaPlugin
from queue_system.api.operations import BULK_ROUTES, OperationController
from queue_system.api.paths import refuse_ambiguous_paths
from queue_system.api.queues import QueueController
from queue_system.api.routes import TaskController, health, ready, stats, workers
from queue_system.api.schedules import ScheduleController
from queue_system.config.settings import Settings
from queue_system.errors import QueueSystemError
from queue_system.kinds import Registry, load_kinds
from queue_system.service.access import access_stores
from queue_system.service.health import WriteProbe
from queue_system.service.inbox import DevInbox
from queue_system.service.mailbox import Mailbox
from queue_system.service.operations import OperationLimits, OperationService
from queue_system.service.queues import QueueService
from queue_system.service.schedules import ScheduleService
from queue_system.service.tasks import TaskService
from queue_system.storage.connection import async_client
from queue_system.storage.failures import classify
from queue_system.storage.inbox import AsyncInboxStore
from queue_system.storage.keys import Keys
from queue_system.storage.mailbox import AsyncMailboxReader
from queue_system.storage.operations import AsyncOperationStore
from queue_system.storage.queues import AsyncQueueStore
from queue_system.storage.schedules import AsyncScheduleStore
from queue_system.storage.task_store import RedisAsyncTaskStore
from queue_system.transports.signing import parse_secrets

# Objects allocated before a young collection (Python's default: 700). A batch submit allocates
# ~15 containers per item, so the default ran ~20 young collections per 1000-item batch, and their
# survivors fed full collections over every batch in flight: 10,000 (the worker's value) cut the
# API's CPU per batched task by ~20% in process (28 -> 22 us per item, A/B). Garbage cycles still
# reach it, so memory stays bounded.
GC_YOUNG_THRESHOLD = 10_000


def create_app(
    settings: Settings,
    *,
    registry: Registry | None = None,
    keys: Keys | None = None,
    keyring: KeyRing | None = None,
) -> Litestar:
    """`registry`: the kinds the API accepts; by default the built-ins and TASK_MODULES."""
    kinds = registry if registry is not None else load_kinds(settings)
    state: dict[str, object] = {}
    # Raises ConfigError (before anything listens) for bad keys or production without keys.
    guard, open_warning = build_guard(settings, [route.path for route in compat_router.routes])
    sessions = Sessions(keyring if keyring is not None else guard.ring, guard)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        client = async_client(
            settings.redis,
            decode_responses=True,
            health_check_interval=30,
            socket_connect_timeout=5,
        )
        store = RedisAsyncTaskStore(
            client,
            keys,
            min_replicas=settings.min_replicas,
            min_replicas_timeout_ms=settings.min_replicas_timeout_ms,
        )
        access = access_stores(client, settings, keys or Keys())
        guard.start(access, settings.api.trusted_proxies)
        sessions.start(access.sessions)
        if open_warning:
            logger.warning("{}", open_warning)
        state["service"] = TaskService(
            store,
            kinds,
            retention_ms=settings.retention_ms,
            max_timeout_ms=settings.max_timeout_ms,
            retry_defaults=settings.worker,
            batch_max=settings.batch_max,
        )
        state["schedules"] = ScheduleService(
            AsyncScheduleStore(client, keys or Keys()),
            state["service"],  # type: ignore[arg-type]
            settings.schedules_max,
        )
        state["queues"] = QueueService(AsyncQueueStore(client, keys or Keys()))
        state["operations"] = OperationService(
            AsyncOperationStore(client, keys or Keys()),
            OperationLimits(
                settings.bulk_rate,
                settings.bulk_max_rate,
                settings.operation_retention_ms,
                settings.retention_ms,
            ),
        )
        state["write_probe"] = WriteProbe()
        state["dev_inbox"] = DevInbox(AsyncInboxStore(client, keys))
        state["mailbox"] = AsyncMailboxReader(client, keys)
        # Everything built so far lives as long as the process: keep it out of the collector's
        # generations, so full collections under load stay short (p99).
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        try:
            yield
        finally:
            await client.aclose()

    # Plain closures over `state`, on purpose: injecting Litestar's `State` into these providers
    # took the submit benchmark from 0.66 to 0.42 of the bare route (A/B, 3 x 4 s rounds).
    def provide_service() -> TaskService:
        return state["service"]  # type: ignore[return-value]

    def provide_schedules() -> ScheduleService:
        return state["schedules"]  # type: ignore[return-value]

    def provide_queues() -> QueueService:
        return state["queues"]  # type: ignore[return-value]

    def provide_operations() -> OperationService:
        return state["operations"]  # type: ignore[return-value]

    def provide_write_probe() -> WriteProbe:
        return state["write_probe"]  # type: ignore[return-value]

    def provide_dev_inbox() -> DevInbox:
        return state["dev_inbox"]  # type: ignore[return-value]

    def provide_mailbox() -> Mailbox:
        return state["mailbox"]  # type: ignore[return-value]

    # The development inbox (DEV_INBOX): `make run` in development only.
    dev = [inbox_router(parse_secrets(settings.security.signing_secret))] if settings.api.dev_inbox else []
    board = dashboard_router(sessions, inbox=settings.api.dev_inbox)
    app = Litestar(
        route_handlers=[
            TaskController,
            submit_batch,
            ScheduleController,
            QueueController,
            *BULK_ROUTES,
            OperationController,
            stats,
            health,
            ready,
            compat_router,
            board,
            metrics,
            list_destinations,
            workers,
            *dev,
        ],
        # The front door innermost: its refusals are responses the two others see.
        middleware=[http_metrics, count_rejections, guard.middleware],
        # The request id (api/request_ids.py) and browser protections (api/headers.py) on every response.
        before_send=[request_ids.add_header, security_headers],
        lifespan=[lifespan],
        dependencies={
            "service": Provide(provide_service, sync_to_thread=False),
            "write_probe": Provide(provide_write_probe, sync_to_thread=False),
            "schedules": Provide(provide_schedules, sync_to_thread=False),
            "dev_inbox": Provide(provide_dev_inbox, sync_to_thread=False),
            "mailbox": Provide(provide_mailbox, sync_to_thread=False),
            "queues": Provide(provide_queues, sync_to_thread=False),
            "rate_charge": Provide(lambda: guard.charge, sync_to_thread=False),
            "operations": Provide(provide_operations, sync_to_thread=False),
        },
        # Errors become HTTP in api/problems.py only; Redis's by what they mean (storage/failures.py).
        exception_handlers={
            AccessRefused: on_access_refused,
            QueueSystemError: problems.on_app_error,
            HTTPException: problems.on_http_error,
            redis.RedisError: problems.storage_error_handler(classify),
            Exception: problems.on_unexpected,
        },
        request_max_body_size=settings.api.max_body_bytes,
        request_class=BodyRequest,  # an undecodable body is a 400, not a 500
        logging_config=None,
        plugins=[StrictStructSchemaPlugin()],
        openapi_config=OpenAPIConfig(
            title="queue_system",
            version=__version__,
            description="Background jobs you must not lose, above all outbound webhooks.",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
    )
    # Before routing: a segment that decodes to `/` or `..` must not reach another record (api/paths.py).
    app.asgi_handler = refuse_ambiguous_paths(app.asgi_handler)
    return app
