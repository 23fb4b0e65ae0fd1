# The throw-away PostgreSQL of the bench scripts (sourced, not run): Debian's server, initdb +
# pg_ctl as the `postgres` user (when run as root) in a directory of the script's, on a free
# port, deleted with it. One copy, so the scripts start and stop it the same way.
#
#   free_port                  a free TCP port on 127.0.0.1
#   pg_start DIR [SETTINGS]    a server in DIR/pg (log DIR/pg.log, socket in DIR) with extra
#                              `-c name=value` SETTINGS; sets PG_URL
#   pg_stop DIR                stops it (nothing if none was started there)
#   pg_version                 the server's version
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Runs a PostgreSQL program as its owner: the server refuses to run as root.
_as_pg() {
  local dir=$1
  shift
  if [[ $(id -u) -eq 0 ]]; then chown -R postgres "$dir"; runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() {
  local dir=$1 settings=${2:-}
  [[ -x "$PG_BIN/initdb" ]] || { echo "missing PostgreSQL server: apt-get install postgresql" >&2; exit 1; }
  local port
  port=$(free_port)
  _as_pg "$dir" "$PG_BIN/initdb" -D "$dir/pg" -U ward --auth=trust -E UTF8 >/dev/null
  _as_pg "$dir" "$PG_BIN/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 $settings" start >/dev/null
  PG_URL="postgres://ward@127.0.0.1:$port/postgres"
}

pg_stop() {
  local dir=$1
  if [[ -d "$dir/pg" ]]; then _as_pg "$dir" "$PG_BIN/pg_ctl" -D "$dir/pg" -m fast stop >/dev/null 2>&1 || true; fi
}

pg_version() { "$PG_BIN/postgres" --version | awk '{print $3}'; }
