# The worker (the Dramatiq master and its processes): `docker compose up --scale worker=3`, or alone:
#   docker build -f docker/worker.Dockerfile -t queue-system-worker . && docker run -e REDIS_URL=... queue-system-worker
# The first two stages are the same in api.Dockerfile, so the builder shares their layers.

# ---- build: the dependencies from constraints.txt, then the package, into /opt/venv
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# A virtualenv: the image's Python may be a distribution's, whose pip would write to dist-packages.
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml constraints.txt ./
# The dependency layer changes only with pyproject.toml or constraints.txt, not with the code.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && /opt/venv/bin/pip install -c constraints.txt -r requirements.txt
COPY README.md ./
COPY queue_system ./queue_system
RUN /opt/venv/bin/pip install --no-deps . && /opt/venv/bin/queue-system --help > /dev/null

# ---- base: what both services run on
FROM python:3.11-slim AS base
# tini as PID 1: it forwards one SIGTERM to the service and reaps orphans. Not version-pinned:
# the pin would name one Debian release's build, and the base image moves between releases.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent app
COPY --from=build /opt/venv /opt/venv
COPY docker/healthcheck.py /opt/queue-system/healthcheck.py
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 ENV=production DATA_DIR=/tmp/queue-system
WORKDIR /tmp
USER 10001:10001
STOPSIGNAL SIGTERM

# ---- the worker
FROM base AS worker
# tini hands the one SIGTERM of `docker stop` to the Dramatiq master, which lets running tasks
# finish (up to WORKER_REQUEST_TIMEOUT + 30 s) and leaves the rest queued. A second SIGTERM would
# kill the workers at once, which is why nothing else here signals it.
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "/opt/queue-system/healthcheck.py", "worker"]
ENTRYPOINT ["tini", "--", "queue-system"]
CMD ["worker"]
