#!/bin/sh
# The image's entrypoint: run the command as PUID:PGID (default 1000:1000) under tini.
#
# Started as root (the default), it makes /state writable by PUID:PGID (only /state itself, never
# the archive or the media) and drops to those ids with setpriv: no root process is left, not even
# PID 1. Started with --user (any non-root id), it runs the command as that user and ignores PUID/PGID.
set -eu

if [ "$(id -u)" = 0 ]; then
    case "${PUID}:${PGID}" in
        *[!0-9:]* | :* | *:) echo "hb2r-entrypoint: PUID and PGID must be numeric ids, got PUID=${PUID} PGID=${PGID}" >&2; exit 64 ;;
    esac
    if [ "${PUID}" = 0 ]; then
        echo "hb2r-entrypoint: PUID=0 would run the agent as root; choose the id that should own the archive" >&2
        exit 64
    fi
    # hb2r keeps state only in a folder that is its user's alone (README "The store").
    if [ -d /state ] && [ "$(stat -c %u:%g /state)" != "${PUID}:${PGID}" ]; then
        chmod go-w /state
        chown "${PUID}:${PGID}" /state
    fi
    export HOME=/state
    exec setpriv --reuid="${PUID}" --regid="${PGID}" --clear-groups --inh-caps=-all -- /usr/bin/tini -- "$@"
fi
exec /usr/bin/tini -- "$@"
