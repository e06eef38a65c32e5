#!/usr/bin/env bash
# Provides the binaries kubemend's test bed and embedded mode need, at pinned versions:
#   temporal (dev server), etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
# compiled from Go modules into a cache outside the clone, plus sshd and libfaketime from apt.
# Idempotent: builds only what is missing, and prints one line per tool when cached.
# Usage: scripts/tools.sh [--print-bin-dir]
set -euo pipefail

TEMPORAL_CLI_VERSION=${TEMPORAL_CLI_VERSION:-v1.5.1}
K8S_VERSION=${K8S_VERSION:-v1.34.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}

CACHE=${KUBEMEND_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubemend/tools}
BIN="$CACHE/bin"
export GOTOOLCHAIN=local

if [[ ${1:-} == --print-bin-dir ]]; then echo "$BIN"; exit 0; fi

log() { printf 'tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_go() {
  command -v go >/dev/null || die "Go is not installed; install Go >= 1.24 (https://go.dev/doc/install) and re-run"
}

# build_once NAME VERSION FN: runs FN into $CACHE/NAME-VERSION unless its stamp exists, then
# links the binaries into $BIN.
build_once() {
  local name=$1 version=$2 fn=$3 dir="$CACHE/$1-$2"
  if [[ ! -f $dir/.done ]]; then
    need_go
    log "building $name $version (first time only; cached in $dir)"
    rm -rf "$dir" && mkdir -p "$dir/src" "$dir/bin"
    local started=$SECONDS
    (cd "$dir/src" && "$fn" "$version" "$dir/bin") > "$dir/build.log" 2>&1 ||
      { tail -n 30 "$dir/build.log" >&2; die "building $name $version failed; full log: $dir/build.log"; }
    touch "$dir/.done"
    BUILT=$((BUILT + 1))
    log "built $name $version in $((SECONDS - started))s"
  fi
  mkdir -p "$BIN"
  for f in "$dir"/bin/*; do ln -sfn "$f" "$BIN/$(basename "$f")"; done
}

build_temporal() {
  local version=$1 out=$2
  if command -v temporal >/dev/null && [[ -z ${KUBEMEND_BUILD_TEMPORAL:-} ]]; then
    ln -sfn "$(command -v temporal)" "$out/temporal"; return
  fi
  go mod init local/temporal-cli
  go get -tool "github.com/temporalio/cli/cmd/temporal@$version"
  go build -trimpath -ldflags='-s -w' -o "$out/temporal" github.com/temporalio/cli/cmd/temporal
}

build_etcd() {
  local version=$1 out=$2
  go mod init local/etcd-bin
  go get -tool "go.etcd.io/etcd/server/v3@$version"
  go build -trimpath -ldflags='-s -w' -o "$out/etcd" go.etcd.io/etcd/server/v3
}

build_k8s() {
  local version=$1 out=$2 staging="v0.${1#v1.}" minor
  minor=$(cut -d. -f2 <<<"$version")
  go mod init local/k8s-bins
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging;
  # as a dependency those replaces are ignored, so pin each to the published staging version.
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$gomod" |
    while read -r m; do go mod edit -replace="$m=$m@$staging"; done
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubectl) c pkgs=()
  for c in "${cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  go get -tool "${pkgs[@]/%/@$version}"
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  go build -trimpath -ldflags "$ld" -o "$out/" "${pkgs[@]}"
}

apt_tools() {
  local missing=()
  [[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
  [[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ]] || missing+=(faketime)
  ((${#missing[@]} == 0)) && return
  [[ $(id -u) == 0 ]] || die "missing ${missing[*]}: run 'sudo apt-get install -y ${missing[*]}'"
  log "installing ${missing[*]} from apt"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

main() {
  mkdir -p "$CACHE"
  apt_tools
  BUILT=0
  build_once temporal "$TEMPORAL_CLI_VERSION" build_temporal
  build_once etcd "$ETCD_VERSION" build_etcd
  build_once k8s "$K8S_VERSION" build_k8s
  # Quiet when everything was cached.
  ((BUILT == 0)) || log "ready in $BIN (temporal $TEMPORAL_CLI_VERSION, etcd $ETCD_VERSION, kubernetes $K8S_VERSION)"
}

main "$@"
