# collab-operator image. Build from the repository root:
#   docker build -f deploy/docker/operator.Dockerfile -t collab-operator:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The workspace's release profile keeps line tables (for profiling a local build); the image
# gets a stripped binary (no symbols, no debug info), a fraction of the size.
ENV CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p collab-operator \
    && cp target/release/collab-operator /usr/local/bin/collab-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/collab-operator /usr/local/bin/collab-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/collab-operator"]
CMD ["run"]
