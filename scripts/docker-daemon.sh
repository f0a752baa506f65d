#!/usr/bin/env bash
# A private Docker daemon for dlgrade's container tests, on a machine where none runs.
#
#   scripts/docker-daemon.sh start       install docker.io if missing (root + apt), start a
#                                        private containerd and dockerd, print DOCKER_HOST
#   scripts/docker-daemon.sh base-image  build dlgrade-base:bookworm with debootstrap (offline
#                                        base for docker/Dockerfile: no registry is needed)
#   scripts/docker-daemon.sh env         print `export DOCKER_HOST=...`
#   scripts/docker-daemon.sh stop        stop the daemons this script started (by pid file)
#   scripts/docker-daemon.sh status
#
# DLGRADE_DOCKER_USERNS=1 start: the daemon runs containers in a user namespace
# (--userns-remap=default): their root is an unprivileged uid of this machine. dockerd then
# adds the system user `dockremap` and its /etc/subuid, /etc/subgid ranges (the one change it
# makes outside its folder), and keeps a separate image store, so images are built again.
#
# Everything lives under $DLGRADE_DOCKER_STATE (default /var/tmp/dlgrade-docker): data root,
# exec root, socket, containerd state, logs, pid files. They are kept between runs, so the
# base image and the build cache survive a restart of the daemon. The machine's network is
# never touched: no bridge, no iptables, no NAT; containers get `--network none` and image
# builds use the host's network.
set -euo pipefail

STATE="${DLGRADE_DOCKER_STATE:-/var/tmp/dlgrade-docker}"
SOCK="$STATE/docker.sock"
CTR_SOCK="$STATE/containerd/containerd.sock"
BASE_IMAGE="${DLGRADE_BASE_IMAGE:-dlgrade-base:bookworm}"
export DOCKER_HOST="unix://$SOCK"

log() { printf 'docker-daemon: %s\n' "$*" >&2; }

alive() {  # alive PIDFILE: the process named in the file is running
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_tools() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v containerd >/dev/null 2>&1 || missing+=(containerd)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        log "missing ${missing[*]}, and cannot install them (needs root and apt-get)"
        return 1
    fi
    log "installing ${missing[*]}"
    # policy-rc.d keeps the package from starting the system-wide daemon.
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
}

wait_for() {  # wait_for SOCKET SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        [ -S "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

start() {
    if [ "$(id -u)" -ne 0 ]; then
        log "must run as root (dockerd needs it)"
        exit 1
    fi
    install_tools
    mkdir -p "$STATE/containerd" "$STATE/data" "$STATE/exec" "$STATE/run"
    chmod 711 "$STATE"
    if ! alive "$STATE/containerd.pid"; then
        cat > "$STATE/containerd/config.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTR_SOCK"
[ttrpc]
  address = "$CTR_SOCK.ttrpc"
[debug]
  address = "$STATE/containerd/debug.sock"
EOF
        rm -f "$CTR_SOCK"
        containerd --config "$STATE/containerd/config.toml" \
            >"$STATE/containerd.log" 2>&1 &
        echo $! > "$STATE/containerd.pid"
        wait_for "$CTR_SOCK" 30 || {
            log "containerd did not start: $STATE/containerd.log"
            exit 1
        }
    fi
    if ! alive "$STATE/dockerd.pid"; then
        rm -f "$SOCK"
        local userns=()
        [ "${DLGRADE_DOCKER_USERNS:-0}" = 1 ] && userns=(--userns-remap=default)
        # --bridge=none, --iptables=false, --ip-masq=false: the daemon creates no interface
        # and no firewall rule. exec root and pid file are private too, so a system daemon
        # (if one appears later) and this one never share state.
        dockerd --data-root "$STATE/data" --exec-root "$STATE/exec" \
            --pidfile "$STATE/run/dockerd.pid" -H "unix://$SOCK" \
            --containerd "$CTR_SOCK" --iptables=false --ip6tables=false --ip-masq=false \
            --bridge=none --storage-driver overlay2 --log-level warn "${userns[@]}" \
            >"$STATE/dockerd.log" 2>&1 &
        echo $! > "$STATE/dockerd.pid"
        wait_for "$SOCK" 60 || { log "dockerd did not start: $STATE/dockerd.log"; exit 1; }
        for _ in $(seq 100); do
            docker version >/dev/null 2>&1 && break
            sleep 0.2
        done
    fi
    docker version --format 'docker-daemon: server {{.Server.Version}} at '"$SOCK" >&2
    echo "export DOCKER_HOST=$DOCKER_HOST"
}

base_image() {
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "$BASE_IMAGE exists"
        return 0
    fi
    install_tools
    local root="$STATE/rootfs-bookworm"
    rm -rf "$root"
    log "debootstrap --variant=minbase bookworm (a minute or two)"
    # The mirror is debootstrap's default unless DEBOOTSTRAP_MIRROR names one.
    # Python comes with it, so an image build needs no apt (a build that may have no network,
    # under a user-remapping daemon, needs that).
    # (python3-distutils provides what python3.11-venv needs; debootstrap resolves no virtuals.)
    local include=python3.11,python3.11-venv,python3-distutils,ca-certificates
    debootstrap --variant=minbase --include="$include" \
        bookworm "$root" ${DEBOOTSTRAP_MIRROR:+"$DEBOOTSTRAP_MIRROR"} \
        >"$STATE/debootstrap.log" 2>&1 || {
            log "debootstrap failed: $STATE/debootstrap.log"
            exit 1
        }
    # Slim it the way official base images are: no apt lists, no docs.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
        "$root"/var/cache/apt/*.bin
    tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
    rm -rf "$root"
    log "built $BASE_IMAGE"
}

stop() {
    local name pid
    for name in dockerd containerd; do  # dockerd first: it still talks to containerd
        if alive "$STATE/$name.pid"; then
            pid="$(cat "$STATE/$name.pid")"
            kill "$pid"
            for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
            log "stopped $name ($pid)"
        fi
        rm -f "$STATE/$name.pid"
    done
    # dockerd leaves its network namespace mounted under the exec root; only ours, deepest first.
    local mnt
    awk -v state="$STATE/" 'index($2, state) == 1 {print $2}' /proc/mounts | sort -r |
        while read -r mnt; do
            umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
        done
}

status() {
    local name
    for name in containerd dockerd; do
        if alive "$STATE/$name.pid"; then
            echo "$name: running (pid $(cat "$STATE/$name.pid"))"
        else
            echo "$name: stopped"
        fi
    done
    echo "DOCKER_HOST=$DOCKER_HOST"
}

case "${1:-}" in
    start) start ;;
    base-image) base_image ;;
    env) echo "export DOCKER_HOST=$DOCKER_HOST" ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|base-image|env|stop|status" >&2; exit 2 ;;
esac
