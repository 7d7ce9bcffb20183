# portcall: build the release binary, run it as non-root on a minimal base.
#
#   docker build -t registry.example.com/portcall:0.1.0 .
#
# Stage 1: the release build, locked to Cargo.lock.
FROM rust:1.85-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin portcall \
    && install -D -m 0755 target/release/portcall /out/portcall

# Stage 2: glibc and CA certificates only; no shell, no package manager.
# The image's `nonroot` user is uid/gid 65532 (the Deployment runs as it).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/portcall /usr/local/bin/portcall
USER 65532:65532
# server.listen in manifests/kubernetes/configmap.yaml
EXPOSE 8080
ENTRYPOINT ["portcall"]
CMD ["serve"]
