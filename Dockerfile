# syntax=docker/dockerfile:1
#
# pgdrill in a container.
#
#   docker build -t pgdrill .                        # default: the binary only (backend: cnpg)
#   docker build --target local -t pgdrill:local .   # plus PostgreSQL 15 and barman-cloud
#
# The default image is what the CronJob in deploy/ runs: with `backend: cnpg` pgdrill only
# talks to the Kubernetes API and to PostgreSQL over TCP, so it needs the binary and CA
# certificates. The `local` backend restores on the machine it runs on, so it additionally
# needs the PostgreSQL server binaries (of the backed-up major version) and barman-cloud:
# the `local` target adds postgresql-15 from Debian and barman[cloud,azure] in a venv.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The target directory is a cache mount, so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin pgdrill \
    && install -D -m 0755 target/release/pgdrill /out/pgdrill

FROM ${RUNTIME_IMAGE} AS cnpg
# 65532 is the conventional "nonroot" uid. It gets a passwd entry (home /tmp, the one writable
# place in the CronJob's pod) because PostgreSQL and Python tools look the user up.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 pgdrill \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin pgdrill
COPY --from=builder /out/pgdrill /usr/local/bin/pgdrill
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["/usr/local/bin/pgdrill"]
CMD ["--help"]

FROM cnpg AS local
USER root
ARG BARMAN_VERSION=3.19.1
# postgresql-15 is bookworm's PostgreSQL. pgdrill finds the newest /usr/lib/postgresql/*/bin
# (or $PGDRILL_PG_BIN); a backup of another major needs that major's server binaries.
# barman-cloud-* are found on PATH.
# The main cluster postgresql-common would create on install is not wanted: pgdrill runs its
# own scratch servers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-common \
    && sed -ri 's/^#?\s*create_main_cluster\s*=.*/create_main_cluster = false/' \
        /etc/postgresql-common/createcluster.conf \
    && apt-get install -y --no-install-recommends postgresql-15 python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/barman \
    && /opt/barman/bin/pip install --no-cache-dir --disable-pip-version-check \
        "barman[cloud,azure]==${BARMAN_VERSION}"
ENV PATH=/opt/barman/bin:$PATH
USER 65532:65532

# The default target is the last stage: the binary-only image the CronJob runs.
FROM cnpg
