# syntax=docker/dockerfile:1
# Multi-stage build of the single flux binary; the runtime image is Debian slim, non-root.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY Settings.toml ./
RUN cargo build --release --locked --bin flux

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/flux --create-home flux
COPY --from=build /src/target/release/flux /usr/local/bin/flux
USER flux
WORKDIR /var/lib/flux
ENV FLUX_ENV=production
EXPOSE 3001 3002 3003
# Probes /health/ready on PORT (3001); for `serve collab` pass --url http://127.0.0.1:3003/health/ready.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 CMD ["flux", "healthcheck"]
ENTRYPOINT ["flux"]
CMD ["serve", "unified"]
