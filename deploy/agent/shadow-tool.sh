# Sourced by install.sh and uninstall.sh (beside them in the bundle).
# useradd/groupadd/userdel/groupdel rewrite etc/passwd- and friends as backups: runs one of them under
# $ROOT and puts the admin's own backups back as they were (or removes the ones the tool made).
shadow_tool() {
  backup=$(mktemp -d)
  for f in passwd group shadow gshadow; do [ ! -e "$ROOT/etc/$f-" ] || cp -p "$ROOT/etc/$f-" "$backup/$f-"; done
  status=0
  "$@" || status=$?
  for f in passwd group shadow gshadow; do
    if [ -e "$backup/$f-" ]; then cp -p "$backup/$f-" "$ROOT/etc/$f-"; else rm -f "$ROOT/etc/$f-"; fi
  done
  rm -rf "$backup"
  return $status
}
