#!/usr/bin/env bash
# Starts the services the HA and backup tests use when they are not running: PostgreSQL on
# 127.0.0.1:5432 (trust auth, database `test`) and Redis on 127.0.0.1:6379. Used by
# scripts/test.sh and .ci/run. Leaves running servers alone.
set -euo pipefail

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "== starting PostgreSQL" >&2
  version=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -n1)
  if [[ -z $version ]]; then
    echo "start-services: no PostgreSQL cluster in /etc/postgresql (apt-get install postgresql)" >&2
    exit 1
  fi
  conf=/etc/postgresql/$version/main
  # The tests connect as postgres over TCP without a password (a throwaway CI database).
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$conf/pg_hba.conf"; then
    sed -i '1i host all all 127.0.0.1/32 trust' "$conf/pg_hba.conf"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 -q || { echo "start-services: PostgreSQL is not answering" >&2; exit 1; }
if ! psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='test'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -qc 'create database test'
fi

if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  echo "== starting Redis" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 30); do (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && break; sleep 0.2; done
fi
