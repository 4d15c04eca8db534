# syntax=docker/dockerfile:1
# Build stage: everything the binary needs is compiled in (SQLite, libpq and OpenSSL are
# bundled), so the runtime image carries one file and its CA certificates.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked && strip target/release/ketamine-outcomes

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/ketamine-outcomes ketamine \
    && mkdir -p /var/lib/ketamine-outcomes && chown ketamine /var/lib/ketamine-outcomes
COPY --from=build /src/target/release/ketamine-outcomes /usr/local/bin/ketamine-outcomes
USER ketamine
WORKDIR /var/lib/ketamine-outcomes
ENV KO_BIND_ADDRESS=0.0.0.0:8080 \
    KO_DATA_DIR=/var/lib/ketamine-outcomes \
    KO_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["ketamine-outcomes"]
CMD ["serve"]
