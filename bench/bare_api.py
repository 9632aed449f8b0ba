"""The baseline API: a bare Litestar route that returns 201 with no I/O, served like the product.

    BENCH_PORT=8099 python bench/bare_api.py

Same framework, server and server options as `queue-system api` (queue_system/cli/main.py: uvicorn, no
access log, no server header); the route decodes the JSON body (any server must read it) and
answers a small object.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import uvicorn
from litestar import Litestar, Response, post
from litestar.params import JSONBody


@post("/api/v1/tasks", status_code=201)
async def submit(data: JSONBody[dict[str, Any]]) -> Response[dict[str, Any]]:
    task_id = str(uuid.uuid4())
    return Response(
        {"id": task_id, "status": "pending"},
        status_code=201,
        headers={"Location": f"/api/v1/tasks/{task_id}"},
    )


def main() -> None:
    app = Litestar(route_handlers=[submit], logging_config=None, openapi_config=None)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(os.environ["BENCH_PORT"]),
        log_config=None,
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
