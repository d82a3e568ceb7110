#!/usr/bin/env bash
# Throwaway PostgreSQL server for the test suite.
#
#   scripts/pg-test.sh start DIR   initdb into DIR, start a server on 127.0.0.1 and print
#                                  postgresql+asyncpg://postgres@127.0.0.1:PORT/sopbot_test
#                                  (the only thing ever written to stdout)
#   scripts/pg-test.sh url DIR     print the URL of the server running in DIR
#   scripts/pg-test.sh stop DIR    stop that server and delete DIR (idempotent)
#
# DIR is normally made by the caller with `mktemp -d`. Installs Debian's `postgresql` package
# when no server binaries are found. Never touches the Debian cluster or the system service.
set -euo pipefail

readonly DB_NAME=sopbot_test
readonly DB_SUPERUSER=postgres
readonly FIRST_PORT=55432
readonly PORT_TRIES=100
readonly MARKER=.sopbot-pg-test
readonly FALLBACK_USER=sopbot-pg

# stdout belongs to the URL alone: everything else, ours and every child's, goes to stderr.
exec 3>&1 1>&2

die() {
    echo "pg-test: $*"
    exit 1
}

# libpq variables from the caller's environment must not redirect our own client calls.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGSERVICE PGOPTIONS PGPASSWORD PGDATA \
    PGSSLMODE PGCONNECT_TIMEOUT 2>/dev/null || true

is_root() { [[ $(id -u) -eq 0 ]]; }

newest_bindir() {
    local initdb
    initdb=$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)
    [[ -x $initdb ]] && dirname "$initdb"
}

install_postgresql() {
    is_root || die "PostgreSQL server binaries missing and not root: apt-get install postgresql"
    # Serialise with scripts/ensure-chromium.sh and with a parallel start of our own:
    # concurrent `apt-get update`s fail on the lists lock rather than wait for it.
    exec 8>>/var/lock/sopbot-apt.lock
    flock -w 900 8 || die "timed out waiting for /var/lock/sopbot-apt.lock"
    if newest_bindir >/dev/null; then
        exec 8>&-
        return 0 # a parallel start installed it while we waited
    fi
    echo "pg-test: installing Debian's postgresql package"
    # The package's postinst would start the system cluster; a policy-rc.d that denies all
    # service starts keeps it down. Only remove the policy if we were the ones to add it.
    local policy=/usr/sbin/policy-rc.d added_policy=0 rc=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        added_policy=1
    fi
    {
        apt-get -q update &&
            DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 install -y \
                --no-install-recommends postgresql
    } || rc=$?
    if ((added_policy)); then rm -f "$policy"; fi
    exec 8>&-
    ((rc == 0)) || die "apt-get install postgresql failed (exit $rc)"
}

# Run a server-side PostgreSQL tool as the unprivileged account (PostgreSQL refuses root).
as_owner() {
    if is_root; then
        runuser -u "$RUN_AS" -- "$@"
    else
        "$@"
    fi
}

pick_run_as() {
    if ! is_root; then
        RUN_AS=$(id -un)
    elif getent passwd postgres >/dev/null; then
        RUN_AS=postgres
    else
        getent passwd "$FALLBACK_USER" >/dev/null ||
            useradd --system --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin "$FALLBACK_USER"
        RUN_AS=$FALLBACK_USER
    fi
}

port_in_use() {
    # A refused loopback connection comes back at once; an accepted one means a listener.
    (: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

url_for_port() {
    echo "postgresql+asyncpg://$DB_SUPERUSER@127.0.0.1:$1/$DB_NAME"
}

# Port of the server running in DIR (4th line of postmaster.pid), or fail.
running_port() {
    local dir=$1 pidfile="$1/data/postmaster.pid" port
    [[ -r $pidfile ]] || return 1
    port=$(sed -n 4p "$pidfile")
    [[ $port =~ ^[0-9]+$ ]] || return 1
    "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$port" -d "$DB_NAME" -U "$DB_SUPERUSER" -t 2 ||
        return 1
    echo "$port"
}

show_log_tail() {
    local log=$1
    if [[ -r $log ]]; then
        echo "---- last lines of $log ----"
        tail -n 30 "$log"
        echo "----"
    fi
}

write_config() {
    local dir=$1 data="$1/data"
    cat >>"$data/postgresql.conf" <<EOF

# --- sopbot throwaway test server (scripts/pg-test.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
log_timezone = 'UTC'
EOF
    # Loopback only; nothing else may connect at all.
    cat >"$data/pg_hba.conf" <<EOF
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
EOF
}

# pg_ctl start, with every fd above 2 closed first: the postmaster outlives us and would
# otherwise hold our stdout (fd 3), the port lock (fd 9) or a caller's pipe open, so that
# `url=$(pg-test.sh start DIR)` or a CI log reader would wait for it forever.
start_server() {
    local data=$1 log=$2 port=$3
    (
        local fd
        for fd in /proc/self/fd/*; do
            fd=${fd##*/}
            if ((fd > 2)); then
                eval "exec $fd>&-" 2>/dev/null || true
            fi
        done
        as_owner "$BINDIR/pg_ctl" start -D "$data" -l "$log" -o "-p $port" -w -t 30 -s \
            >/dev/null 2>"${log%/*}/pg_ctl.err"
    )
}

cmd_start() {
    local dir=$1 data="$1/data" log="$1/postgres.log"

    if [[ -e $dir/$MARKER ]]; then
        local port
        if port=$(running_port "$dir"); then
            url_for_port "$port" >&3
            return 0
        fi
        die "$dir holds a stopped instance; run: $0 stop $dir"
    fi
    [[ -z $(ls -A "$dir") ]] || die "$dir is not empty"
    # A unix socket path is limited to 107 bytes: DIR/.s.PGSQL.NNNNN.lock must fit.
    ((${#dir} <= 85)) || die "path too long for a unix socket directory: $dir"
    touch "$dir/$MARKER"

    pick_run_as
    if is_root; then
        chown -R "$RUN_AS:" "$dir"
        runuser -u "$RUN_AS" -- test -w "$dir" ||
            die "user $RUN_AS cannot reach $dir (a parent directory is closed to it); use mktemp -d"
    fi
    chmod 700 "$dir"
    if ! as_owner "$BINDIR/initdb" -D "$data" -U "$DB_SUPERUSER" -A trust -E UTF8 \
        --locale=C --no-sync >"$dir/initdb.log" 2>&1; then
        show_log_tail "$dir/initdb.log"
        die "initdb failed"
    fi
    write_config "$dir"

    # Serialise our own concurrent starts so two of them do not race for one port; a foreign
    # process can still take a port between the check and the bind, hence the retry on bind.
    local lock
    lock="${TMPDIR:-/tmp}/sopbot-pg-test-$(id -u).lock"
    exec 9>>"$lock"
    flock -w 120 9 || die "timed out waiting for $lock"

    local port=$FIRST_PORT last=$((FIRST_PORT + PORT_TRIES)) started=0
    while ((port < last)); do
        if port_in_use "$port"; then
            port=$((port + 1))
            continue
        fi
        rm -f "$log" # pg_ctl recreates it as the server user
        if start_server "$data" "$log" "$port"; then
            started=1
            break
        fi
        if grep -q -E 'could not bind|Address already in use|could not create any TCP/IP' "$log"; then
            port=$((port + 1))
            continue
        fi
        cat "$dir/pg_ctl.err"
        show_log_tail "$log"
        die "server did not start"
    done
    exec 9>&-
    ((started)) || die "no free port in $FIRST_PORT..$((last - 1))"

    local i
    for ((i = 0; i < 50; i++)); do
        "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$port" -U "$DB_SUPERUSER" -t 1 && break
        sleep 0.2
    done
    if ((i == 50)); then
        show_log_tail "$log"
        cmd_stop_server "$dir"
        die "server on port $port does not accept connections"
    fi
    if ! "$BINDIR/createdb" -h 127.0.0.1 -p "$port" -U "$DB_SUPERUSER" "$DB_NAME"; then
        show_log_tail "$log"
        cmd_stop_server "$dir"
        die "createdb $DB_NAME failed"
    fi
    echo "pg-test: PostgreSQL $(basename "$(dirname "$BINDIR")") on 127.0.0.1:$port, data in $dir"
    url_for_port "$port" >&3
}

# True while PID is the live postmaster of data dir DATA. A zombie has an empty cmdline and a
# recycled pid another one, so neither is mistaken for ours (nor ever signalled).
is_postmaster_of() {
    local cmdline
    cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
    [[ $cmdline == *" -D $2 "* ]]
}

# Wait up to ~10 s for the postmaster PID of DATA to exit; false if it is still there.
wait_gone() {
    local i
    for ((i = 0; i < 100; i++)); do
        is_postmaster_of "$1" "$2" || return 0
        sleep 0.1
    done
    return 1
}

cmd_stop_server() {
    local dir=$1 data="$1/data" pidfile="$1/data/postmaster.pid" pid
    [[ -e $pidfile ]] || return 0
    pid=$(sed -n 1p "$pidfile" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || pid=""
    RUN_AS=$(stat -c %U "$data")
    if [[ -n $BINDIR ]]; then
        as_owner "$BINDIR/pg_ctl" stop -D "$data" -m immediate -w -t 30 -s || true
    fi
    [[ -n $pid ]] || return 0
    # pg_ctl returns once the pid file is gone; wait for the postmaster itself so that its
    # port is free when we return. If pg_ctl failed, signal the postmaster we started.
    wait_gone "$pid" "$data" && return 0
    kill -QUIT "$pid" 2>/dev/null || true
    wait_gone "$pid" "$data" && return 0
    is_postmaster_of "$pid" "$data" && kill -KILL "$pid" 2>/dev/null
    return 0
}

cmd_stop() {
    local dir=$1
    [[ -d $dir ]] || return 0
    [[ $dir != / ]] || die "refusing to delete /"
    if [[ ! -e $dir/$MARKER ]]; then
        # Only ever delete what `start` made: an empty dir, or one carrying our marker.
        [[ -z $(ls -A "$dir") ]] || die "$dir was not made by $0 start; not deleting it"
        rmdir "$dir"
        return 0
    fi
    cmd_stop_server "$dir"
    rm -rf -- "$dir"
}

cmd_url() {
    local dir=$1 port
    [[ -d $dir ]] || die "no such directory: $dir"
    port=$(running_port "$dir") || die "no server running in $dir"
    url_for_port "$port" >&3
}

main() {
    [[ $# -eq 2 ]] || die "usage: $0 start|url|stop DIR"
    local cmd=$1 dir=$2
    [[ -n $dir ]] || die "DIR must not be empty"
    [[ $cmd != start ]] || mkdir -p -- "$dir"
    if [[ -d $dir ]]; then dir=$(cd -- "$dir" && pwd -P); fi
    # Work from / so that no tool, run as whichever user, trips over an unreadable cwd.
    cd /
    if ! BINDIR=$(newest_bindir); then
        case $cmd in
            start)
                install_postgresql
                BINDIR=$(newest_bindir) || die "no /usr/lib/postgresql/*/bin/initdb after install"
                ;;
            stop) [[ -d $dir ]] || return 0 ;;
            *) die "PostgreSQL server binaries not found under /usr/lib/postgresql" ;;
        esac
    fi
    readonly BINDIR
    case $cmd in
        start) cmd_start "$dir" ;;
        url) cmd_url "$dir" ;;
        stop) cmd_stop "$dir" ;;
        *) die "unknown command $cmd; usage: $0 start|url|stop DIR" ;;
    esac
}

main "$@"
