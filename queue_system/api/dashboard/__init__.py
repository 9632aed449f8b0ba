"""The dashboard (/dashboard): server-rendered pages over the task service, htmx for refreshes."""

from queue_system.api.dashboard.routes import dashboard_router

__all__ = ["dashboard_router"]
