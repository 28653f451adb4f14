# syntax=docker/dockerfile:1
# The PER executor as a container: `docker build -t noirwire-per .`
#
#   docker run -d --name per -p 8080:8080 -v per-data:/data \
#     -v /etc/noirwire-per/secrets:/run/secrets:ro \
#     -e PER_ADMIN_TOKEN_FILE=/run/secrets/admin.token \
#     -e PER_DEPOSIT_TOKEN_FILE=/run/secrets/deposit.token \
#     -e PER_ENCRYPTION_KEY_FILE=/run/secrets/encryption.key \
#     noirwire-per
#
# Configuration is by environment only (CONTRACT.md's variables). Secrets are never baked in: pass
# them as files (`*_FILE`, e.g. Docker/Kubernetes secrets); the entrypoint turns `X_FILE` into `X`
# for the variables `per` reads only as values (PER_DATABASE_URL, PER_REDIS_URL, alert keys).
# The data dir is the volume /data; without configured tokens `per serve` creates them there
# (mode 0600). Stop with `docker stop` (SIGTERM: graceful, the last group synced); give it time:
# `--stop-timeout 60`. A long WAL replay delays the first healthy answer: raise
# `--health-start-period` for large data dirs.

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

############################ runtime ############################
FROM debian:bookworm-slim AS runtime
ARG PER_UID=10001
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid ${PER_UID} per \
 && useradd --system --uid ${PER_UID} --gid ${PER_UID} --home-dir /data --shell /usr/sbin/nologin per \
 && install -d -m 0700 -o ${PER_UID} -g ${PER_UID} /data
COPY --from=builder /out/per /usr/local/bin/per
COPY deploy/docker/entrypoint.sh /usr/local/bin/per-entrypoint
RUN chmod 0755 /usr/local/bin/per-entrypoint

ENV PER_DATA_DIR=/data \
    PER_LISTEN=0.0.0.0:8080 \
    DEPLOYMENT_MODE=single \
    SNAPSHOT_INTERVAL=300 \
    PER_CLUSTER=default \
    PER_LOG=info \
    PER_LOG_FORMAT=json

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["per", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/per-entrypoint"]
CMD ["serve"]
