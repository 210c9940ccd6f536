#!/bin/bash
# `sudo sh install.sh` would parse this with dash, which has no arrays: re-run under bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# Installs the edgefleet agent from this unpacked bundle (see README "Installing the agent on a device").
#   sudo ./install.sh --hub URL --token TOKEN [--name NAME] [--root DIR] [--node PATH] [--no-start]
# The token reaches the agent's enroll through its environment, never its command line (ps shows that);
# --token-file FILE (or - for stdin) keeps it off install.sh's own command line and the shell history too.
# Idempotent: a second run with the same arguments rewrites nothing and does not enroll again
# (tokens are single-use). Every step prints what it did, or that it was already so.
set -eu

USAGE='usage: sudo ./install.sh --hub URL --token TOKEN|--token-file FILE [--name NAME] [--root DIR] [--node PATH] [--no-start]
  --hub URL     the hub API URL, e.g. https://hub.example.com:8080
  --token TOK   a single-use enrollment token (fleetctl tokens create, or POST /api/v1/enrollment-tokens);
                not needed when the device is already enrolled (reinstall after uninstall --keep-state)
  --token-file FILE  read the token from FILE (- for stdin) instead
  --name NAME   the device name the hub shows (default: the hostname)
  --root DIR    install into DIR as if it were / (images, tests); nothing is started
  --node PATH   the node binary the unit runs (default: node on PATH)
  --no-start    install and enable, but do not start the service'

usage_error() {
  echo "install.sh: $1" >&2
  echo "$USAGE" >&2
  exit 2
}
die() {
  echo "install.sh: $1" >&2
  exit 1
}
step() { echo "  $1"; }

HUB='' TOKEN='' TOKEN_FILE='' NAME='' ROOT='' NODE='' START=1
while [ $# -gt 0 ]; do
  case "$1" in
    --hub | --token | --token-file | --name | --root | --node)
      [ $# -ge 2 ] && [ -n "$2" ] || usage_error "$1 needs a value"
      case "$1" in
        --hub) HUB=$2 ;; --token) TOKEN=$2 ;; --token-file) TOKEN_FILE=$2 ;; --name) NAME=$2 ;; --root) ROOT=$2 ;; --node) NODE=$2 ;;
      esac
      shift 2
      ;;
    --no-start) START=0 && shift ;;
    -h | --help) echo "$USAGE" && exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$HUB" ] || usage_error "--hub is required"
if [ -n "$TOKEN_FILE" ]; then
  [ -z "$TOKEN" ] || usage_error "--token and --token-file: give one of them"
  if [ "$TOKEN_FILE" = - ]; then TOKEN=$(head -n 1); else TOKEN=$(head -n 1 -- "$TOKEN_FILE") || die "cannot read --token-file $TOKEN_FILE"; fi
  TOKEN=${TOKEN%$'\r'} # a file saved on Windows
  [ -n "$TOKEN" ] || usage_error "--token-file $TOKEN_FILE is empty"
fi
case "$HUB" in http://* | https://*) ;; *) usage_error "--hub is \"$HUB\", expected an http:// or https:// URL" ;; esac
# It goes into agent.env as is: a newline would add settings (NODE_OPTIONS=...), quotes and backslashes
# are systemd's EnvironmentFile syntax. A URL needs none of them.
case "$HUB" in *[[:space:][:cntrl:]\"\'\\]*) usage_error "--hub contains whitespace, a quote or a backslash: expected a plain URL" ;; esac

# CDPATH would make cd print the directory, doubling it in the captured path.
unset CDPATH
BUNDLE=$(cd -P -- "$(dirname -- "$0")" && pwd)
[ -f "$BUNDLE/bundle.json" ] || die "$BUNDLE/bundle.json is missing: run install.sh from an unpacked edgefleet-agent bundle"
if [ -n "$ROOT" ]; then
  [ -d "$ROOT" ] || die "--root $ROOT is not a directory"
  ROOT=$(cd -P -- "$ROOT" && pwd)
  [ "$ROOT" != / ] || ROOT=''
fi
[ "$(id -u)" -eq 0 ] || die "must run as root (sudo ./install.sh ...): it creates a system user and writes /etc, /opt and /var/lib"

# --- checks, before anything is touched ---------------------------------------------------------
if [ -z "$NODE" ]; then
  NODE=$(command -v node) || die "node is not installed (or not on PATH): install Node.js 20+ or pass --node PATH"
fi
[ -x "$NODE" ] || die "--node $NODE is not an executable"
NODE=$(readlink -f "$NODE")
# It goes unquoted into the unit's ExecStart= (and through sed): systemd would split it at a space.
case "$NODE" in *[!A-Za-z0-9._/+@-]*) die "node is at \"$NODE\": the unit's ExecStart= needs a path of letters, digits and ._/+@- only; pass --node with a symlink such as /usr/local/bin/node" ;; esac
manifest() { "$NODE" -e 'const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(m[process.argv[2]]);' "$BUNDLE/bundle.json" "$1"; }
VERSION=$(manifest version)
BUNDLE_ARCH=$(manifest arch)
BUNDLE_ABI=$(manifest nodeAbi)
BUNDLE_NODE=$(manifest nodeVersion)
NODE_ARCH=$("$NODE" -p process.arch)
NODE_ABI=$("$NODE" -p process.versions.modules)
[ "$NODE_ARCH" = "$BUNDLE_ARCH" ] || die "this bundle is for linux-$BUNDLE_ARCH but $NODE runs on $NODE_ARCH: use the linux-$NODE_ARCH bundle (README: building the bundle)"
[ "$NODE_ABI" = "$BUNDLE_ABI" ] || die "this bundle was built with node $BUNDLE_NODE (ABI $BUNDLE_ABI) but $NODE is $("$NODE" --version) (ABI $NODE_ABI): its SQLite module would not load; install node $(echo "$BUNDLE_NODE" | cut -d. -f1).x or build the bundle with this node"
step "node $NODE ($("$NODE" --version), ABI $NODE_ABI, $NODE_ARCH) matches bundle $VERSION"

OPT="$ROOT/opt/edgefleet/agent"
ETC="$ROOT/etc/edgefleet"
STATE="$ROOT/var/lib/edgefleet"
UNIT_DIR="$ROOT/etc/systemd/system"
UNIT="$UNIT_DIR/edgefleet-agent.service"
SYSTEMD_RUNNING=0
restart_needed=0
[ -z "$ROOT" ] && [ -d /run/systemd/system ] && SYSTEMD_RUNNING=1

# --- enrollment first: a refused token leaves nothing installed -------------------------------------
if [ -f "$STATE/identity.json" ]; then
  step "enrollment: already enrolled ($STATE/identity.json), no token used"
else
  [ -n "$TOKEN" ] || usage_error "--token is required (this device has no $STATE/identity.json yet)"
  # Into a private temp dir first, so a refused token leaves no trace on the device; removed however we exit.
  enroll_dir=$(mktemp -d)
  trap 'rm -rf "$enroll_dir"' EXIT
  # --opt=value: a value starting with "-" (a name) would otherwise be taken for an option.
  set -- enroll "--hub=$HUB" "--state-dir=$enroll_dir/state"
  [ -z "$NAME" ] || set -- "$@" "--name=$NAME"
  if ! out=$(EDGEFLEET_ENROLL_TOKEN=$TOKEN EDGEFLEET_LOG_LEVEL=warn "$NODE" "$BUNDLE/edgefleet-agent.mjs" "$@" 2>&1); then
    echo "$out" | grep -v '^{' >&2 || true
    die "enrollment with $HUB failed (nothing was installed); get a fresh token and run install.sh again"
  fi
  mkdir -p -m 0700 "$STATE"
  # identity.json last and by rename: a run killed midway leaves no half identity that a re-run would trust.
  cp -p "$enroll_dir/state/identity.json" "$STATE/identity.json.new"
  mv "$STATE/identity.json.new" "$STATE/identity.json"
  rm -rf "$enroll_dir"
  trap - EXIT
  step "enrollment: enrolled with $HUB, identity in $STATE/identity.json"
fi

# --- system user and group ----------------------------------------------------------------------
. "$BUNDLE/shadow-tool.sh"
PREFIX=()
[ -z "$ROOT" ] || PREFIX=(--prefix "$ROOT")
if grep -q '^edgefleet:' "$ROOT/etc/group"; then
  step "group edgefleet: already exists"
else
  shadow_tool groupadd "${PREFIX[@]}" --system edgefleet || die "groupadd edgefleet failed"
  step "group edgefleet: created"
fi
NOLOGIN=/usr/sbin/nologin
[ -x "$ROOT$NOLOGIN" ] || [ -x "$NOLOGIN" ] || NOLOGIN=/sbin/nologin
if grep -q '^edgefleet:' "$ROOT/etc/passwd"; then
  # Someone else's user of that name is used as it is (its shell and home are not the agent's concern: the
  # unit gives it no home and no login); uninstall.sh will remove it, though.
  step "user edgefleet: already exists ($(awk -F: '$1 == "edgefleet" { print "uid " $3 ", shell " $7 }' "$ROOT/etc/passwd"))"
else
  shadow_tool useradd "${PREFIX[@]}" --system --gid edgefleet --no-create-home --home-dir /nonexistent \
    --shell "$NOLOGIN" --comment 'edgefleet agent' edgefleet || die "useradd edgefleet failed"
  step "user edgefleet: created (system user, no login shell, no home)"
fi
EF_UID=$(awk -F: '$1 == "edgefleet" { print $3 }' "$ROOT/etc/passwd")
EF_GID=$(awk -F: '$1 == "edgefleet" { print $3 }' "$ROOT/etc/group")

# --- the bundle: DIR/opt/edgefleet/agent/<version>, `current` pointing at it --------------------------
TARGET="$OPT/$VERSION"
if [ -d "$TARGET" ] && diff -r -q "$BUNDLE" "$TARGET" >/dev/null 2>&1; then
  step "bundle: $TARGET already installed"
else
  mkdir -p "$OPT"
  rm -rf "$TARGET.new"
  cp -R -p "$BUNDLE" "$TARGET.new"
  chown -R 0:0 "$TARGET.new"
  chmod -R u+rwX,go+rX,go-w "$TARGET.new"
  rm -rf "$TARGET"
  mv "$TARGET.new" "$TARGET"
  restart_needed=1
  step "bundle: installed $VERSION to $TARGET"
fi
PREVIOUS=$(readlink "$OPT/current" 2>/dev/null || true)
if [ "$PREVIOUS" = "$VERSION" ]; then
  step "bundle: $OPT/current already points at $VERSION"
else
  ln -sfn "$VERSION" "$OPT/current.new"
  mv -T "$OPT/current.new" "$OPT/current"
  restart_needed=1
  step "bundle: $OPT/current now points at $VERSION${PREVIOUS:+ (was $PREVIOUS)}"
  # The version just replaced stays, for a rollback by hand (ln -sfn OLD current; systemctl restart);
  # older ones, and leftovers of a killed run, go.
  for old in "$OPT"/*; do
    name=${old##*/}
    case "$name" in current | "$VERSION" | "$PREVIOUS") continue ;; esac
    [ -e "$old" ] || continue
    rm -rf -- "$old"
    step "bundle: removed $old"
  done
fi

# --- config file: written once, a user's edits are kept -------------------------------------------------
render_config() {
  cat <<EOF
# edgefleet agent settings, read by edgefleet-agent.service (EnvironmentFile=).
# Edit, then: systemctl restart edgefleet-agent. install.sh never overwrites this file once written.
# Every setting: edgefleet-agent --help (usage and env), or the README's agent configuration reference.

# The hub this device enrolled with. The live endpoints are in /var/lib/edgefleet/identity.json;
# to move the device to another hub, uninstall (or delete identity.json) and install with a new token.
EDGEFLEET_HUB_URL=$HUB

# fatal, error, warn, info, debug or trace (logs go to the journal: journalctl -u edgefleet-agent).
EDGEFLEET_LOG_LEVEL=info

# Worker threads per loaded model and onnxruntime threads per worker; unset: sized to the cores.
#EDGEFLEET_AGENT_WORKERS=1
#EDGEFLEET_AGENT_THREADS=2

# Milliseconds between telemetry reports.
#EDGEFLEET_TELEMETRY_INTERVAL_MS=10000

# Keep the replaced model version loaded after a switch: auto (memory allowing), on or off.
#EDGEFLEET_STANDBY=auto

# Drift tracking (on|off) and field samples sent to the hub per window (0 to 20).
#EDGEFLEET_DRIFT=on
#EDGEFLEET_FIELD_SAMPLES_RANDOM=0

# Loopback TCP port for the local API, besides the Unix socket /run/edgefleet/agent.sock.
#EDGEFLEET_AGENT_TCP_PORT=8081
EOF
}
mkdir -p "$ETC"
if [ -f "$ETC/agent.env" ]; then
  if render_config | cmp -s - "$ETC/agent.env"; then
    step "config: $ETC/agent.env already written"
  else
    step "config: $ETC/agent.env kept as it is (edited since install; --hub $HUB not written into it)"
  fi
else
  render_config >"$ETC/agent.env.new"
  chown "0:$EF_GID" "$ETC/agent.env.new"
  chmod 0640 "$ETC/agent.env.new"
  mv "$ETC/agent.env.new" "$ETC/agent.env"
  step "config: wrote $ETC/agent.env"
fi

# --- the unit, as shipped in the bundle; only ExecStart's node path follows --node --------------------
mkdir -p "$UNIT_DIR"
render_unit() { sed -E "s#^(ExecStart=)/usr/bin/node([[:space:]])#\1$NODE\2#" "$BUNDLE/edgefleet-agent.service"; }
if [ -f "$UNIT" ] && render_unit | cmp -s - "$UNIT"; then
  step "unit: $UNIT already installed"
else
  render_unit >"$UNIT.new"
  chmod 0644 "$UNIT.new"
  mv "$UNIT.new" "$UNIT"
  restart_needed=1
  step "unit: installed $UNIT (node: $NODE)"
fi

# --- state directory: the agent's own, 0700 ------------------------------------------------------------
if [ "$(stat -c '%u:%g %a' "$STATE")" = "$EF_UID:$EF_GID 700" ] && [ -z "$(find "$STATE" \( ! -uid "$EF_UID" -o ! -gid "$EF_GID" \) -print -quit)" ]; then
  step "state: $STATE already owned by edgefleet, 0700"
else
  chown -R "$EF_UID:$EF_GID" "$STATE"
  chmod 0700 "$STATE"
  step "state: $STATE now owned by edgefleet, 0700"
fi

# --- enable ---------------------------------------------------------------------------------------
WANTED_BY=$(sed -n 's/^WantedBy=[[:space:]]*//p' "$UNIT" | head -n 1)
WANTS_LINK="$UNIT_DIR/$WANTED_BY.wants/edgefleet-agent.service"
if [ -L "$WANTS_LINK" ]; then
  step "enable: already enabled ($WANTED_BY)"
else
  if [ -n "$ROOT" ]; then
    systemctl --root "$ROOT" --quiet enable edgefleet-agent.service 2>/dev/null || true
  elif [ "$SYSTEMD_RUNNING" -eq 1 ]; then
    systemctl daemon-reload && systemctl --quiet enable edgefleet-agent.service
  fi
  # systemctl is missing or unusable (a container, no systemd): the symlink it would make, by hand.
  if [ ! -L "$WANTS_LINK" ]; then
    mkdir -p "$(dirname "$WANTS_LINK")"
    ln -s /etc/systemd/system/edgefleet-agent.service "$WANTS_LINK"
  fi
  step "enable: enabled for $WANTED_BY"
fi

# --- start --------------------------------------------------------------------------------------------
if [ -n "$ROOT" ]; then
  step "start: not started (--root $ROOT)"
elif [ "$START" -eq 0 ]; then
  step "start: not started (--no-start)"
elif [ "$SYSTEMD_RUNNING" -eq 0 ]; then
  step "start: not started (systemd is not PID 1 here); start the agent with: $NODE $OPT/current/edgefleet-agent.mjs run"
else
  systemctl daemon-reload
  if [ "$restart_needed" -eq 1 ] || ! systemctl --quiet is-active edgefleet-agent.service; then
    systemctl restart edgefleet-agent.service
    step "start: edgefleet-agent.service (re)started"
  else
    step "start: edgefleet-agent.service already running"
  fi
fi
echo "edgefleet agent $VERSION installed${ROOT:+ in $ROOT}"
