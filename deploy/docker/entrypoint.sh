#!/bin/sh
# Container entrypoint: for each variable below, `X_FILE=/path` sets X to the file's content
# (Docker/Kubernetes secrets), unless X is already set. PER_ADMIN_TOKEN_FILE,
# PER_DEPOSIT_TOKEN_FILE and PER_ENCRYPTION_KEY_FILE are read by `per` itself. Then `per` replaces
# this shell (PID 1 gets SIGTERM directly).
set -eu
for name in PER_DATABASE_URL PER_REDIS_URL PER_PAGERDUTY_ROUTING_KEY PER_SLACK_WEBHOOK_URL \
            PER_SMTP_URL PER_SMS_WEBHOOK_URL PER_BACKUP_S3_URL; do
  file_var="${name}_FILE"
  eval "file=\${$file_var:-}"
  eval "value=\${$name:-}"
  if [ -n "$file" ]; then
    if [ -n "$value" ]; then
      echo "per-entrypoint: both $name and $file_var are set; using $name" >&2
    elif [ -r "$file" ]; then
      value=$(cat "$file")
      export "$name=$value"
    else
      echo "per-entrypoint: $file_var=$file is not readable" >&2
      exit 2
    fi
  fi
  unset "$file_var" 2>/dev/null || true
done
exec per "$@"
