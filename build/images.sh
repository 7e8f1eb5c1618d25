#!/usr/bin/env bash
# Build this project's images with podman here, where no registry is reachable.
#
#   build/images.sh base   # Debian bookworm from debootstrap, imported as localhost/triton-llm-base:bookworm
#   build/images.sh cpu    # build/Dockerfile.cpu on that base; prints the image reference
#
# The CPU image is tagged by a content hash of everything it is built from (the Dockerfile, the files it
# copies, the build args and the base image id), and not rebuilt when that tag exists. Podman settings
# come from build/containers.conf (runc, cgroupfs, ulimits). torch comes from pip's find-links folder
# on this machine kind (pip config `find-links`, the +cpu wheel), mounted read-only into the build.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
BASE_REF="${TRITON_LLM_BASE_IMAGE:-localhost/triton-llm-base:bookworm}"
CPU_REPO="${TRITON_LLM_CPU_IMAGE_REPO:-localhost/triton-llm-cpu}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
WHEELS="${TRITON_LLM_WHEELS:-$(pip3 config get global.find-links 2>/dev/null || echo /opt/wheels)}"
log() { echo "images.sh: $*" >&2; }

build_base() {
  if podman image exists "$BASE_REF"; then return 0; fi
  local dir; dir="$(mktemp -d /var/tmp/triton-llm-debootstrap.XXXXXX)"
  trap 'rm -rf "$dir"' RETURN
  log "debootstrap bookworm into $dir (about a minute)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$dir/root" \
    "$DEBIAN_MIRROR" >"$dir/debootstrap.log" 2>&1 || { tail -20 "$dir/debootstrap.log" >&2; return 1; }
  tar -C "$dir/root" -c . | podman import --quiet - "$BASE_REF" >/dev/null
  log "imported $BASE_REF"
}

# The build context: exactly the files the Dockerfile copies, as a reproducible tar stream.
context_tar() {
  tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
    -cf - build/Dockerfile.cpu build/kubectl_layer.py pyproject.toml README.md triton_llm model_repository engines
}

build_cpu() {
  build_base
  local base_id args=() digest ref ctx started
  base_id="$(podman image inspect --format '{{.Id}}' "$BASE_REF")"
  args=(--build-arg "BASE_IMAGE=$BASE_REF" --build-arg TORCH_INDEX_URL= --build-arg PIP_FIND_LINKS=/wheels)
  digest="$( { context_tar; printf '%s\n' "$base_id" "${args[@]}"; } | sha256sum | cut -c1-16)"
  ref="$CPU_REPO:$digest"
  if podman image exists "$ref"; then echo "$ref"; return 0; fi
  ctx="$(mktemp -d /var/tmp/triton-llm-context.XXXXXX)"
  trap 'rm -rf "$ctx"' RETURN
  context_tar | tar -C "$ctx" -xf -
  started=$SECONDS
  log "building $ref (cold: several minutes)"
  podman build --quiet --network host --runtime runc --cgroup-manager cgroupfs \
    --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 \
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    -v "$WHEELS:/wheels:ro" \
    "${args[@]}" -f "$ctx/build/Dockerfile.cpu" -t "$ref" "$ctx" >&2
  log "built $ref in $((SECONDS - started)) s"
  # Older builds of this repository are 2 GB each: drop those no container uses (podman refuses the others).
  podman images --format '{{.Repository}}:{{.Tag}}' "$CPU_REPO" | grep -vxF "$ref" \
    | xargs -r podman image rm >/dev/null 2>&1 || true
  echo "$ref"
}

case "${1:-}" in
  base) build_base; echo "$BASE_REF" ;;
  cpu) build_cpu ;;
  *) echo "usage: $0 base|cpu" >&2; exit 2 ;;
esac
