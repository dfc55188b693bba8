#!/usr/bin/env bash
# The bash completion (deploy/bash-completion/portcullis) offers every option
# and subcommand that each program's --help names, and the values it lists.
# Usage: check_completion.sh COMPLETION-FILE NAME=BINARY...
set -uo pipefail
file=$1
shift
# shellcheck disable=SC1090
source "$file" || { echo "FAIL: cannot source $file"; exit 1; }
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# complete_words WORD...: the candidates the completion offers for the last word.
complete_words() {
  COMP_WORDS=("$@")
  COMP_CWORD=$(($# - 1))
  COMPREPLY=()
  local fn
  fn=$(complete -p "$1" 2>/dev/null | sed -n 's/.*-F \([^ ]*\).*/\1/p')
  [ -n "$fn" ] || { fail "no completion registered for $1"; return; }
  "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
  printf '%s\n' "${COMPREPLY[@]}"
}

for pair in "$@"; do
  name=${pair%%=*} binary=${pair#*=}
  help=$("$binary" --help) || { fail "$name --help failed"; continue; }
  # Subcommands: the second word of each usage line that is a plain word.
  subs=$(printf '%s\n' "$help" | sed -n "s/^\(usage:\)\? *$name \([a-z][a-z-]*\)\b.*/\2/p" | sort -u)
  top=$(complete_words "$name" "")
  for s in $subs; do
    grep -qx -- "$s" <<<"$top" || fail "$name: subcommand '$s' not offered"
  done
  # Every --option in --help is offered after some subcommand (or at top level).
  for opt in $(printf '%s\n' "$help" | grep -o -- '--[a-z][a-z-]*' | sort -u); do
    found=no
    grep -qx -- "$opt" <<<"$(complete_words "$name" "--")" && found=yes
    for s in $subs; do
      [ $found = yes ] && break
      grep -qx -- "$opt" <<<"$(complete_words "$name" "$s" "x" "--")" && found=yes
    done
    [ $found = yes ] || fail "$name: option $opt (in --help) not offered"
  done
  # Values listed in --help as a|b are offered after their option.
  while read -r opt values; do
    got=$(complete_words "$name" "${subs%%$'\n'*}" "x" "$opt" "")
    [ -n "$subs" ] || got=$(complete_words "$name" "$opt" "")
    for v in ${values//|/ }; do
      grep -qx -- "$v" <<<"$got" || fail "$name: value '$v' of $opt not offered"
    done
  done < <(printf '%s\n' "$help" | grep -o -- '--[a-z-]* [a-z0-9-]*|[a-z0-9|-]*' | sort -u)
done
[ "$failures" = 0 ] && echo "ok: completion offers every subcommand, option and listed value" || exit 1
