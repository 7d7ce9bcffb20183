#!/usr/bin/env bash
# Builds a tiny OCI image whose config carries the source commit
# (org.opencontainers.image.revision) and pushes it with skopeo to the local
# registry of the quickstart, which notifies portcall:
#
#   scripts/demo-push.sh [TAG=v1.0.0] [REVISION=6113728f27ae82c7b1a177c8d03f9e96e0adf246]
#
# No Docker daemon and no network: the image is one file in one layer.
set -euo pipefail

TAG=${1:-v1.0.0}
REVISION=${2:-6113728f27ae82c7b1a177c8d03f9e96e0adf246}
REGISTRY=${REGISTRY:-localhost:5000}
REPOSITORY=${REPOSITORY:-octo-org/hello-world}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/layout/blobs/sha256" "$work/root"

# put writes stdin as a blob and prints its digest and size.
put() {
    local tmp="$work/blob" digest
    cat > "$tmp"
    digest=$(sha256sum "$tmp" | cut -d' ' -f1)
    mv "$tmp" "$work/layout/blobs/sha256/$digest"
    echo "sha256:$digest $(stat -c %s "$work/layout/blobs/sha256/$digest")"
}

printf 'hello from %s at %s\n' "$REPOSITORY" "$TAG" > "$work/root/hello.txt"
read -r layer layer_size < <(tar -C "$work/root" --mtime=@0 --owner=0 --group=0 -cf - hello.txt | put)
read -r config config_size < <(printf '%s' "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Labels\":{\"org.opencontainers.image.revision\":\"$REVISION\",\"org.opencontainers.image.source\":\"https://github.com/$REPOSITORY\"}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"$layer\"]}}" | put)
read -r manifest manifest_size < <(printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"$config\",\"size\":$config_size},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"$layer\",\"size\":$layer_size}]}" | put)
printf '%s' "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"$manifest\",\"size\":$manifest_size,\"annotations\":{\"org.opencontainers.image.ref.name\":\"$TAG\"}}]}" > "$work/layout/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' > "$work/layout/oci-layout"

skopeo copy --quiet --dest-tls-verify=false \
    "oci:$work/layout:$TAG" "docker://$REGISTRY/$REPOSITORY:$TAG"
echo "pushed $REGISTRY/$REPOSITORY:$TAG (revision $REVISION)"
