# Build: the MariaDB and PostgreSQL client libraries are the only system
# dependencies (SQLite is compiled in; TLS for mail and webhooks is rustls).
FROM rust:1-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmariadb-dev libpq-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole workspace (its manifest names the client crate, the example and
# the bench and test targets); .dockerignore leaves out target/ and .git.
COPY . .
RUN cargo build --release --locked --bin latchkey

# Run: a slim image with the client libraries, as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmariadb3 libpq5 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/latchkey --create-home latchkey
COPY --from=build /src/target/release/latchkey /usr/local/bin/latchkey
USER latchkey
WORKDIR /var/lib/latchkey
ENV LATCHKEY_BIND=0.0.0.0:8080 \
    LATCHKEY_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/latchkey"]
CMD ["serve"]
