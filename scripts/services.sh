#!/usr/bin/env bash
# Start the local services the tests use, where installed but not running:
# PostgreSQL 127.0.0.1:5432 (database `test`, trust auth), Redis 6379, NATS JetStream 4222;
# and installs ffmpeg (the reel tests) and chromium (the console's browser test) when missing and
# apt can.
# The tests never skip PostgreSQL: if it cannot be reached they fail.
set -uo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 50); do port_open "$1" && return 0; sleep 0.2; done
  echo "warning: $2 did not come up on port $1" >&2
}

if ! port_open 5432 && command -v pg_ctlcluster >/dev/null; then
  echo "starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_port 5432 PostgreSQL
fi
if ! port_open 6379 && command -v redis-server >/dev/null; then
  echo "starting Redis" >&2
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 Redis
fi
if ! port_open 4222 && [ -x /usr/sbin/nats-server ]; then
  echo "starting NATS" >&2
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_port 4222 NATS
fi
if ! command -v ffmpeg >/dev/null; then
  # The reel tests cut real footage; without ffmpeg they fail (never skip).
  echo "installing ffmpeg" >&2
  apt-get install -y -q ffmpeg >/dev/null 2>&1 || echo "warning: could not install ffmpeg; the reel tests will fail" >&2
fi
if [ ! -x /usr/bin/chromium ]; then
  # The console's browser test drives Debian's Chromium; without it that test fails (never skips).
  echo "installing chromium" >&2
  apt-get install -y -q chromium >/dev/null 2>&1 || echo "warning: could not install chromium; the console's browser test will fail" >&2
fi
if command -v psql >/dev/null && port_open 5432; then
  # The tests use database `test`; create it when missing.
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null \
    | grep -q 1 || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null 2>&1 || true
fi
exit 0
