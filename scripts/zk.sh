#!/usr/bin/env bash
# Starts and stops a private ZooKeeper on 127.0.0.1 for tests and local clusters (docs/contract.md §9).
#
#   scripts/zk.sh start DIR [PORT]   # PORT 0 or absent: a free port. Prints "127.0.0.1:PORT"
#   scripts/zk.sh stop DIR
#
# ZK_ADDRESS binds another address than 127.0.0.1 (the network-namespace test uses its own).
# ZK_MAX_CLIENTS caps connections per client address (ZooKeeper's default 60; 0: no cap, for
# scripts/scale.sh's thousand sessions from 127.0.0.1); ZK_HEAP sets the JVM heap (256m).
#
# Needs Debian's `zookeeper` package (scripts/test.sh installs it) and Java.
set -euo pipefail
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: zk.sh start DIR [PORT] | zk.sh stop DIR" >&2; exit 1; }
CP=/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar:/usr/share/java/slf4j-api.jar

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# `srvr` answers with the mode only once the database is loaded (`ruok` can answer earlier).
srvr() {
  python3 - "$1" "$2" <<'PY' 2>/dev/null || true
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
    s.sendall(b"srvr")
    print(s.makefile().read())
except OSError:
    pass
PY
}

case "$cmd" in
  start)
    [ -f /usr/share/java/zookeeper.jar ] || { echo "ZooKeeper is not installed: run scripts/test.sh (or apt-get install zookeeper)" >&2; exit 2; }
    addr=${ZK_ADDRESS:-127.0.0.1}
    port=${3:-0}; [ "$port" != 0 ] || port=$(free_port)
    mkdir -p "$dir/data"
    cat > "$dir/zoo.cfg" <<CFG
tickTime=200
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$port
clientPortAddress=$addr
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr,stat
forceSync=no
maxSessionTimeout=60000
maxClientCnxns=${ZK_MAX_CLIENTS:-60}
CFG
    nohup java "-Xmx${ZK_HEAP:-256m}" -cp "$CP" org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" >"$dir/zk.log" 2>&1 &
    echo $! > "$dir/zk.pid"
    for _ in $(seq 1 150); do
      if srvr "$addr" "$port" | grep -q 'Mode: standalone'; then
        echo "$addr:$port"
        exit 0
      fi
      kill -0 "$(cat "$dir/zk.pid")" 2>/dev/null || { echo "ZooKeeper exited; see $dir/zk.log" >&2; tail -5 "$dir/zk.log" >&2; exit 1; }
      sleep 0.1
    done
    echo "ZooKeeper did not become ready in 15 s; see $dir/zk.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$dir/zk.pid" ]; then
      pid=$(cat "$dir/zk.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/zk.pid"
    fi
    ;;
  *) echo "usage: zk.sh start DIR [PORT] | zk.sh stop DIR" >&2; exit 1 ;;
esac
