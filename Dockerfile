# syntax=docker/dockerfile:1
# flowvault: a small, non-root, read-only-friendly image that runs `flowvault export` by default.
# Build it for the architecture that runs it (Fargate's cpu_architecture, your nodes'):
#   docker buildx build --platform linux/amd64 -t IMAGE:TAG .     (linux/arm64 for ARM64/Graviton)
# and deploy it by digest (IMAGE@sha256:…, `docker buildx imagetools inspect IMAGE:TAG`).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# Build the dependencies first, against placeholder sources: this layer is reused until
# Cargo.toml or Cargo.lock change, so code changes rebuild in seconds.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/export.rs \
    && cargo build --release --locked --bin flowvault \
    && rm -rf src benches
COPY src ./src
COPY benches ./benches
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin flowvault

# distroless/cc: glibc, CA certificates, a nonroot user (65532), no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="flowvault" \
      org.opencontainers.image.description="Back up every Genesys Cloud Architect flow to S3-compatible storage" \
      org.opencontainers.image.source="https://github.com/flowvault/flowvault" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /src/target/release/flowvault /usr/local/bin/flowvault
USER 65532:65532
# With a read-only root filesystem the job writes only to its destination and /tmp (spooled
# manifest rows; the previous archive unpacked for --since). Declared as a volume so that a bind
# mount without a source (Fargate's task storage, `docker run --read-only`) starts as the image's
# world-writable /tmp, not a root-owned 0755 directory the non-root user cannot write.
VOLUME ["/tmp"]
WORKDIR /tmp
ENV FLOWVAULT_LOG_FORMAT=json
ENTRYPOINT ["flowvault"]
CMD ["export"]
