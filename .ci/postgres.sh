#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the search tests: `.ci/postgres.sh start DIR` prints a
# URL (unix socket in DIR, password authentication), `.ci/postgres.sh stop DIR` removes it.
# PostgreSQL refuses to run as root: as root, the server runs as the user postgres.
set -euo pipefail
action=${1:?start or stop}
dir=${2:?a directory}
initdb=$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | tail -1 || true)
bin=$(dirname "$(readlink -f "${initdb:-/nonexistent}")")
[ -x "$bin/initdb" ] || { echo "no initdb: install Debian's postgresql" >&2; exit 3; }
as() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "$action" in
start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    printf 'search-test\n' >"$dir/.pw"
    [ "$(id -u)" = 0 ] && chown postgres "$dir/.pw"
    as "$bin/initdb" -D "$dir/data" -U search --pwfile="$dir/.pw" -A scram-sha-256 >"$dir/initdb.log" 2>&1 \
        || { tail -5 "$dir/initdb.log" >&2; exit 1; }
    as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-k $dir -c listen_addresses='' -c max_connections=50 -c fsync=off" start >/dev/null \
        || { tail -5 "$dir/server.log" >&2; exit 1; }
    PGPASSWORD=search-test as "$bin/createdb" -h "$dir" -U search studies
    echo "postgresql://search:search-test@/studies?host=$dir"
    ;;
stop)
    as "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
esac
