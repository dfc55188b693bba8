#!/usr/bin/env bash
# The README's first command on a fresh checkout: clones the source tree (a copy
# of its tracked files when it is not a git checkout) into a new directory of
# mode 0700 (as a checkout under root's home is), runs `deploy/demo.sh --once`
# there with its own build directory, and verifies the archive the demo wrote.
# Fails when the demo fails (a program it needs is not built, a file the
# service users cannot reach, a message that does not cross) or when the
# archive does not verify.
#
# Usage: demo_from_clone.sh SOURCE_DIR
set -euo pipefail
src=${1:?usage: demo_from_clone.sh SOURCE_DIR}
work=$(mktemp -d /tmp/portcullis-clone.XXXXXX)   # mode 0700
demo=$(mktemp -d /tmp/portcullis-clone-demo.XXXXXX)
chmod 0755 "$demo"   # the service users write and read the demo's files
cleanup() { rm -rf "$work" "$demo"; }
trap cleanup EXIT
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # What is committed, as a fresh clone has it (nothing from a build directory).
  git clone --quiet --no-hardlinks "$src" "$work/portcullis"
else
  mkdir "$work/portcullis"
  tar -C "$src" --exclude='./build' --exclude='./build-*' -cf - . | tar -C "$work/portcullis" -xf -
fi
echo "demo_from_clone: checkout in $work/portcullis (mode $(stat -c %a "$work"))"
cd "$work/portcullis"
set +e
BUILD_DIR=build DEMO_DIR="$demo" deploy/demo.sh --once > "$work/demo.log" 2>&1
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
  tail -n 60 "$work/demo.log"
  echo "demo_from_clone: FAIL: deploy/demo.sh --once exited with status $rc on a fresh checkout"
  exit 1
fi
tail -n 15 "$work/demo.log"
if ! build/tools/audit/portcullis-audit verify "$demo/audit" --pubkey "$demo/keys/audit.pub"; then
  echo "demo_from_clone: FAIL: the demo's archive does not verify"
  exit 1
fi
echo "demo_from_clone: OK: the demo ran from a fresh checkout and its archive verifies"
