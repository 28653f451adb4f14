# syntax=docker/dockerfile:1
# The PER executor as a container. Two ways to build the same runtime image:
#
#   docker build -t noirwire_per .                      # multi-stage: compiles per in rust:1.95-bookworm
#   install -D target/release/per dist/per              # or: no Rust builder image reachable (CI here):
#   docker build --target runtime-prebuilt -t noirwire_per .   #   the runtime stage takes dist/per
#
# (`--build-arg BASE_IMAGE=…` swaps the Debian bookworm base, e.g. a local mmdebstrap import:
# scripts/container-check.sh builds and runs it with podman.) Run it as the runbook does:
#
#   docker run -d --name per_executor -p 8080:8080 \
#     -e DEPLOYMENT_MODE=primary -e SNAPSHOT_INTERVAL=300 \
#     -e PER_DATABASE_URL_FILE=/run/secrets/database_url -e PER_NODE_ID=per-a \
#     -v /data/snapshots:/app/snapshots -v /data/wal:/app/wal \
#     -v /etc/noirwire-per/secrets:/run/secrets:ro \
#     -e PER_ADMIN_TOKEN_FILE=/run/secrets/admin.token \
#     -e PER_DEPOSIT_TOKEN_FILE=/run/secrets/deposit.token \
#     --stop-timeout 60 noirwire_per
#   docker exec per_executor ./bin/capture_emergency_snapshot
#
# The working directory /app is the data dir (PER_DATA_DIR=/app): snapshots land in
# /app/snapshots (the runbook's volume), the WAL in /app/wal (mount it too, or it lives in the
# container's volume), and /app/bin, /app/scripts hold the runbook's commands (thin wrappers over
# `per`). Configuration is by environment only (CONTRACT.md's variables). Secrets are never baked
# in: pass them as files (`*_FILE`); the entrypoint turns `X_FILE` into `X` for the variables `per`
# reads only as values (PER_DATABASE_URL, PER_REDIS_URL, alert keys). Without configured tokens
# `per serve` creates them in /app (mode 0600). Stop with `docker stop` (SIGTERM: graceful, the
# last group synced); give it time: `--stop-timeout 60`. A long WAL replay delays the first healthy
# answer: raise `--health-start-period` for large data dirs. Podman: build with `--format docker`
# (the OCI format has no HEALTHCHECK).

ARG BASE_IMAGE=debian:bookworm-slim

############################ builder ############################
FROM rust:1.95-bookworm AS builder
WORKDIR /src
# Manifests first so the dependency layer is cached across source changes.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p per \
 && install -D -m 0755 target/release/per /out/per

############################ runtime (everything but the binary) ############################
FROM ${BASE_IMAGE} AS runtime-base
ARG PER_UID=10001
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid ${PER_UID} per \
 && useradd --system --uid ${PER_UID} --gid ${PER_UID} --home-dir /app --shell /usr/sbin/nologin per \
 && install -d -m 0700 -o ${PER_UID} -g ${PER_UID} /app /app/snapshots /app/wal
COPY deploy/docker/entrypoint.sh /usr/local/bin/per-entrypoint
COPY bin/ /app/bin/
COPY scripts/ /app/scripts/
RUN chmod 0755 /usr/local/bin/per-entrypoint /app/bin /app/scripts

ENV PER_DATA_DIR=/app \
    PER_LISTEN=0.0.0.0:8080 \
    DEPLOYMENT_MODE=single \
    SNAPSHOT_INTERVAL=300 \
    PER_CLUSTER=default \
    PER_LOG=info \
    PER_LOG_FORMAT=json

USER 10001:10001
WORKDIR /app
VOLUME ["/app/snapshots", "/app/wal"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["per", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/per-entrypoint"]
CMD ["serve"]

############################ runtime, binary built on the host ############################
FROM runtime-base AS runtime-prebuilt
ARG PER_BINARY=dist/per
COPY ${PER_BINARY} /usr/local/bin/per

############################ runtime (default target) ############################
FROM runtime-base AS runtime
COPY --from=builder /out/per /usr/local/bin/per
