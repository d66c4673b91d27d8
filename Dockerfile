# syntax=docker/dockerfile:1
# One image for every role: by default the whole shop (every module of the table: the crate's default
# features); FEATURES picks what is compiled in instead, e.g. --build-arg FEATURES=inventory for the
# inventory service.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
ARG FEATURES=""
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN if [ -n "${FEATURES}" ]; then \
      cargo build --release --locked --no-default-features --features "${FEATURES}"; \
    else \
      cargo build --release --locked; \
    fi \
 && cp target/release/shop /usr/local/bin/shop

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/shop --create-home shop
COPY --from=build /usr/local/bin/shop /usr/local/bin/shop
USER 10001
WORKDIR /var/lib/shop
# One malloc arena: glibc gives each thread that allocates an arena of its own, and the garbage of building
# each worker's routes stays there (7 MB of a 38 MB idle process); throughput is the same on the reads
# benchmark (docs/performance.md).
ENV SHOP_HTTP_ADDR=0.0.0.0:8080 \
    SHOP_DATA_DIR=/var/lib/shop/data \
    SHOP_LOG_FORMAT=json \
    MALLOC_ARENA_MAX=1
EXPOSE 8080
# The binary probes itself: no curl or shell needed in the image.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["/usr/local/bin/shop", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/shop"]
CMD ["serve"]
