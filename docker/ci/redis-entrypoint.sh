#!/bin/sh
# The redis:7 stand-in's entry point (docker/ci/setup.sh). The official image compiles protected
# mode off, so a server without a password still accepts the other containers; this does the same
# with a flag, except for the informational options (`redis-server --version`).
if [ "$1" = redis-server ]; then
    case "${2:-}" in
        -v | --version | -h | --help | --test-memory) ;;
        *) shift; set -- redis-server --protected-mode no "$@" ;;
    esac
fi
exec "$@"
