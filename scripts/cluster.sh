#!/usr/bin/env bash
# A local multi-process Gale cluster on 127.0.0.1: ZooKeeper, Nimbus and N Supervisors.
#
#   scripts/cluster.sh start [N]   # N supervisors (default 2); prints the settings to export
#   scripts/cluster.sh stop
#   scripts/cluster.sh status      # what runs, and where the logs are
#
# State and logs live in $GALE_CLUSTER_DIR (default /tmp/gale-cluster). ZooKeeper's data stays there
# across stop and start, as a real cluster's does (topologies still running come back); remove the
# directory after `stop` for an empty cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DIR=${GALE_CLUSTER_DIR:-/tmp/gale-cluster}
GALE=${GALE_BIN:-$ROOT/target/release/gale}
cmd=${1:-}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

case "$cmd" in
  start)
    n=${2:-2}
    [ -x "$GALE" ] || cargo build --release --quiet -p gale-cli
    mkdir -p "$DIR"
    zk=$(scripts/zk.sh start "$DIR/zk")
    nimbus="127.0.0.1:$(free_port)"
    echo "$zk" > "$DIR/zookeeper"; echo "$nimbus" > "$DIR/nimbus"
    # Nimbus's token (docs/security.md): made once, readable by this user only.
    token="$DIR/auth-token"
    if [ ! -s "$token" ]; then
      (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$token")
    fi
    export GALE_AUTH_TOKEN_FILE=$token
    # The secret the workers prove to each other, given to every supervisor.
    secret="$DIR/cluster-secret"
    if [ ! -s "$secret" ]; then
      (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$secret")
    fi
    export GALE_CLUSTER_SECRET_FILE=$secret
    GALE_ZOOKEEPER=$zk nohup "$GALE" nimbus --listen "$nimbus" >"$DIR/nimbus.log" 2>&1 &
    echo $! > "$DIR/nimbus.pid"
    for i in $(seq 1 "$n"); do
      ports="$(free_port),$(free_port)"
      GALE_ZOOKEEPER=$zk nohup "$GALE" supervisor --id "sup-$i" --ports "$ports" --work-dir "$DIR/work-sup-$i" >"$DIR/supervisor-$i.log" 2>&1 &
      echo $! > "$DIR/supervisor-$i.pid"
    done
    for _ in $(seq 1 100); do
      GALE_NIMBUS=$nimbus "$GALE" list >/dev/null 2>&1 && break
      sleep 0.1
    done
    echo "Cluster up: ZooKeeper $zk, Nimbus $nimbus, $n supervisors. Logs in $DIR/*.log"
    echo "export GALE_ZOOKEEPER=$zk GALE_NIMBUS=$nimbus GALE_AUTH_TOKEN_FILE=$token"
    ;;
  stop)
    for f in "$DIR"/*.pid; do
      [ -f "$f" ] || continue
      kill "$(cat "$f")" 2>/dev/null || true
      rm -f "$f"
    done
    sleep 0.5
    scripts/zk.sh stop "$DIR/zk"
    echo "Cluster stopped. Logs kept in $DIR"
    ;;
  status)
    for f in "$DIR"/*.pid; do
      [ -f "$f" ] || continue
      pid=$(cat "$f"); name=$(basename "$f" .pid)
      if kill -0 "$pid" 2>/dev/null; then echo "$name: running (pid $pid), log $DIR/$name.log"; else echo "$name: not running"; fi
    done
    [ -f "$DIR/nimbus" ] && echo "export GALE_ZOOKEEPER=$(cat "$DIR/zookeeper") GALE_NIMBUS=$(cat "$DIR/nimbus") GALE_AUTH_TOKEN_FILE=$DIR/auth-token"
    ;;
  *) echo "usage: cluster.sh start [N] | stop | status" >&2; exit 1 ;;
esac
