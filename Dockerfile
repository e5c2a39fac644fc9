# The `pharox` binary (demo, bench, worker, health-check, stats).
#   docker build -t pharox:local .
#   docker run --rm pharox:local demo
FROM rust:1.88-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p pharox-cli \
    && cp target/release/pharox /usr/local/bin/pharox

FROM debian:bookworm-slim
# The system's trust store, for rediss:// (rustls-native-certs reads it).
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# TLS roots for health checks are built into the binary (webpki roots).
COPY --from=build /usr/local/bin/pharox /usr/local/bin/pharox
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/pharox"]
CMD ["--help"]
