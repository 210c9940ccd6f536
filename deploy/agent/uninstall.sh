#!/bin/bash
# `sudo sh uninstall.sh` would parse this with dash, which has no arrays: re-run under bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# Removes what install.sh put on the device: the service, the unit, the bundle, the config, the state
# (unless --keep-state), the edgefleet user and group.
#   sudo ./uninstall.sh [--root DIR] [--keep-state]
set -eu

USAGE='usage: sudo ./uninstall.sh [--root DIR] [--keep-state]
  --root DIR     uninstall from DIR as if it were /
  --keep-state   keep /var/lib/edgefleet (identity, models, outbox) for a later install'

usage_error() {
  echo "uninstall.sh: $1" >&2
  echo "$USAGE" >&2
  exit 2
}
die() {
  echo "uninstall.sh: $1" >&2
  exit 1
}
step() { echo "  $1"; }

ROOT='' KEEP_STATE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] && [ -n "$2" ] || usage_error "--root needs a value"; ROOT=$2; shift 2 ;;
    --keep-state) KEEP_STATE=1 && shift ;;
    -h | --help) echo "$USAGE" && exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
# CDPATH would make cd print the directory, doubling it in a captured path.
unset CDPATH
HERE=$(cd -P -- "$(dirname -- "$0")" && pwd)
if [ -n "$ROOT" ]; then
  [ -d "$ROOT" ] || die "--root $ROOT is not a directory"
  ROOT=$(cd -P -- "$ROOT" && pwd)
  [ "$ROOT" != / ] || ROOT=''
fi
[ "$(id -u)" -eq 0 ] || die "must run as root (sudo ./uninstall.sh): it removes a system user and files in /etc, /opt and /var/lib"

UNIT_DIR="$ROOT/etc/systemd/system"
UNIT="$UNIT_DIR/edgefleet-agent.service"
SYSTEMD_RUNNING=0
[ -z "$ROOT" ] && [ -d /run/systemd/system ] && SYSTEMD_RUNNING=1

if [ "$SYSTEMD_RUNNING" -eq 1 ]; then
  systemctl stop edgefleet-agent.service 2>/dev/null || true
  systemctl --quiet disable edgefleet-agent.service 2>/dev/null || true
  step "service: stopped and disabled"
fi

# The enable symlinks, whichever target wants the unit (systemctl may be unusable, as at install).
for link in "$UNIT_DIR"/*.wants/edgefleet-agent.service; do
  [ -L "$link" ] || continue
  rm -f "$link"
  rmdir "$(dirname "$link")" 2>/dev/null || true
  step "enable: removed $link"
done
if [ -f "$UNIT" ]; then
  rm -f "$UNIT"
  step "unit: removed $UNIT"
else
  step "unit: $UNIT already absent"
fi
[ "$SYSTEMD_RUNNING" -eq 0 ] || systemctl daemon-reload

remove_dir() {
  if [ -e "$1" ]; then
    rm -rf "$1"
    step "$2: removed $1"
  else
    step "$2: $1 already absent"
  fi
}
remove_dir "$ROOT/opt/edgefleet/agent" bundle
rmdir "$ROOT/opt/edgefleet" 2>/dev/null || true
# Only the agent's file: /etc/edgefleet also holds hub.env when the hub runs on this machine.
rm -f "$ROOT/etc/edgefleet/agent.env.new"
remove_dir "$ROOT/etc/edgefleet/agent.env" config
rmdir "$ROOT/etc/edgefleet" 2>/dev/null || true
if [ "$KEEP_STATE" -eq 1 ]; then
  step "state: $ROOT/var/lib/edgefleet kept (--keep-state); owned by the removed user's uid until the next install"
else
  remove_dir "$ROOT/var/lib/edgefleet" state
fi

. "$HERE/shadow-tool.sh"
PREFIX=()
[ -z "$ROOT" ] || PREFIX=(--prefix "$ROOT")
if grep -q '^edgefleet:' "$ROOT/etc/passwd"; then
  shadow_tool userdel "${PREFIX[@]}" edgefleet || die "userdel edgefleet failed"
  step "user edgefleet: removed"
else
  step "user edgefleet: already absent"
fi
if grep -q '^edgefleet:' "$ROOT/etc/group"; then
  shadow_tool groupdel "${PREFIX[@]}" edgefleet || die "groupdel edgefleet failed"
  step "group edgefleet: removed"
else
  step "group edgefleet: already absent"
fi
echo "edgefleet agent uninstalled${ROOT:+ from $ROOT}"
