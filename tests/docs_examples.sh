#!/usr/bin/env bash
# Runs the fenced blocks of the documentation (README.md, docs/*.md) exactly as printed.
#
#   docs_examples.sh list FILE...      one line per block: "FILE:LINE KIND" (KIND "unclassified: why"
#                                      for a block that nothing says how to run)
#   docs_examples.sh check ROOT        fails naming every unclassified block of ROOT's docs
#   docs_examples.sh run FILE LINE     runs the block whose opening fence is on LINE
#   docs_examples.sh all ROOT          runs every block of ROOT's docs
#
# How a block is run is decided by its language and by an optional marker, a one-line HTML
# comment on the line right before the opening fence (the block's text is never edited):
#
#   ```cpp, no marker, with "int main("   program: compiled against the library and run
#   <!-- example: fragment [main-from=N] [include=<h1>,<h2>] -->
#                                         cpp whose lines 1..N-1 go at file scope and lines N.. in
#                                         main() (N=1 when absent), after <containers/containers.hpp>
#                                         and the listed headers; compiled and run
#   ```sh, no marker, first line "$ ..."  session: each "$ " command (with its continuation lines,
#                                         until it parses) runs in a scratch directory; what follows
#                                         up to the next "$ " is its standard output and error, compared
#   ```sh, no marker, otherwise           script: run with bash -e in a scratch directory
#   <!-- example: script needs=PATH -->   a script that is skipped (exit 77) where PATH is absent or
#                                         not writable (/dev/fuse, for a mount)
#   <!-- example: output -->              the exact standard output of the runnable block before it
#   <!-- example: skip REASON -->         not run; the reason is required
#
# Anything else (an unmarked block in another language, a cpp block without main and without a
# marker, a marker this script does not know) is unclassified, and its test fails: no block of the
# documentation escapes by accident.
#
# The scratch directory holds build/release/examples/cgsh (the README's path; a link to $CGSH).
# Environment for `run`: CXX (default g++), CXXFLAGS_DOCS (include directories and flags),
# CGSH (the cgsh binary).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)

# Prints one record per block: LINE \t LANG \t MARKER (the marker's text); "-" for none.
blocks() {
  awk '
    function marker(s) {
      if (match(s, /^[ ]*<!-- example:[ ]*.*-->[ ]*$/)) {
        sub(/^[ ]*<!-- example:[ ]*/, "", s); sub(/[ ]*-->[ ]*$/, "", s); return s
      }
      return ""
    }
    {
      if (!infence && match($0, /^ ? ? ?```/)) {
        lang = $0; sub(/^[ ]*```[ ]*/, "", lang); sub(/[ ].*$/, "", lang)
        if (lang == "") lang = "-"   # bash read collapses empty fields between tabs
        m = marker(prev); if (m == "") m = "-"
        n++; at[n] = NR; langs[n] = lang; marks[n] = m
        infence = 1
      } else if (infence && match($0, /^ ? ? ?```[ ]*$/)) {
        infence = 0
      }
      prev = $0
    }
    END {
      if (infence) langs[n] = "UNTERMINATED"
      for (i = 1; i <= n; i++) printf "%d\t%s\t%s\n", at[i], langs[i], marks[i]
    }
  ' "$1"
}

# The text of the block whose fence is on line $2 of file $1.
body() {
  awk -v start="$2" '
    NR == start { inside = 1; next }
    inside && /^ ? ? ?```[ ]*$/ { exit }
    inside { print }
  ' "$1"
}

# classify LANG MARKER BODYFILE: prints the kind (program, fragment, session, script, output,
# skip), or "unclassified: why".
classify() {
  local lang=${1#-} marker=${2#-} bodyfile=$3
  local word=${marker%% *}
  case "$word" in
    skip)
      local reason=${marker#skip}
      reason=${reason# }
      if [ -z "$reason" ] || [ "$reason" = "$marker" ]; then echo "unclassified: skip needs a reason"; else echo skip; fi
      return ;;
    output) echo output; return ;;
    fragment)
      [ "$lang" = cpp ] && echo fragment || echo "unclassified: fragment is for cpp blocks"
      return ;;
    program)
      [ "$lang" = cpp ] && echo program || echo "unclassified: program is for cpp blocks"
      return ;;
    session|script)
      [ "$lang" = sh ] || [ "$lang" = bash ] && echo "$word" || echo "unclassified: $word is for sh blocks"
      return ;;
    "") ;;
    *) echo "unclassified: unknown marker '$marker'"; return ;;
  esac
  case "$lang" in
    cpp|c++)
      if grep -q 'int main(' "$bodyfile"; then echo program
      else echo "unclassified: a cpp block without main() needs <!-- example: fragment ... -->"; fi ;;
    sh|bash)
      if head -n 1 "$bodyfile" | grep -q '^\$ '; then echo session; else echo script; fi ;;
    UNTERMINATED) echo "unclassified: the fence is never closed" ;;
    "") echo "unclassified: a block without a language needs a marker (output, skip REASON)" ;;
    *) echo "unclassified: a $lang block needs a marker (skip REASON)" ;;
  esac
}

list() {
  local f line lang marker kind tmp
  tmp=$(mktemp)
  for f in "$@"; do
    while IFS=$'\t' read -r line lang marker; do
      body "$f" "$line" >"$tmp"
      kind=$(classify "$lang" "$marker" "$tmp")
      printf '%s:%s %s\n' "$f" "$line" "$kind"
    done < <(blocks "$f")
  done
  rm -f "$tmp"
}

docs_of() {
  local root=$1
  printf '%s\n' "$root/README.md"
  local f
  for f in "$root"/docs/*.md; do [ -e "$f" ] && printf '%s\n' "$f"; done
}

fail() { echo "FAIL: $*" >&2; exit 1; }

# A scratch directory laid out as the documentation assumes, removed on exit.
scratch() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/docs_example.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/build/release/examples"
  if [ -n "${CGSH:-}" ]; then ln -s "$CGSH" "$work/build/release/examples/cgsh"; fi
}

# Runs a program or fragment; its standard output goes to $work/stdout.
run_cpp() {
  local kind=$1 marker=$2 bodyfile=$3 src="$work/example.cpp"
  local from=1 includes="" opt
  for opt in $marker; do
    case "$opt" in
      fragment|program) ;;
      main-from=*) from=${opt#main-from=} ;;
      include=*) includes=${opt#include=} ;;
      *) fail "unknown fragment option '$opt'" ;;
    esac
  done
  # Diagnostics name the Markdown file and its line (#line), the block's text untouched.
  if [ "$kind" = program ]; then
    { echo "#line $((line + 1)) \"$file\""; cat "$bodyfile"; } >"$src"
  else
    {
      echo '#include <containers/containers.hpp>'
      local h
      for h in ${includes//,/ }; do echo "#include $h"; done
      echo "#line $((line + 1)) \"$file\""
      head -n $((from - 1)) "$bodyfile"
      echo 'int main() {'
      echo "#line $((line + from)) \"$file\""
      tail -n +"$from" "$bodyfile"
      echo 'return 0; }'
    } >"$src"
  fi
  # shellcheck disable=SC2086
  "${CXX:-g++}" -std=c++20 -pthread -Wall -Wextra ${CXXFLAGS_DOCS:-} "$src" -o "$work/example" || fail "the example does not compile"
  (cd "$work" && ./example >"$work/stdout") || fail "the example exited with status $?; its output: $(cat "$work/stdout")"
  cat "$work/stdout"
}

# Runs a session: "$ " commands, each followed by the output it must print.
run_session() {
  local bodyfile=$1 cmd="" expected="" have=0 n=0 got
  flush() {
    [ "$have" = 1 ] || return 0
    n=$((n + 1))
    got=$(cd "$work" && bash -c "$cmd" 2>&1)
    [ "$got" = "${expected%$'\n'}" ] || fail "command $n:
$cmd
printed:
$got
the documentation says:
${expected%$'\n'}"
  }
  local l incmd=0
  while IFS= read -r l || [ -n "$l" ]; do
    if [ "$incmd" = 1 ]; then
      cmd+=$'\n'"$l"
      bash -n -c "$cmd" 2>/dev/null && incmd=0
    elif [[ "$l" == '$ '* ]]; then
      flush
      cmd=${l#\$ } expected="" have=1
      bash -n -c "$cmd" 2>/dev/null || incmd=1
    else
      expected+="$l"$'\n'
    fi
  done <"$bodyfile"
  [ "$incmd" = 0 ] || fail "the last command never parses: $cmd"
  flush
  echo "$n commands printed what the documentation says"
}

run_one() {
  file=$1 line=$2
  local rec lang marker kind bodyfile next_line next_lang next_marker
  rec=$(blocks "$file" | awk -F'\t' -v l="$line" '$1 == l')
  [ -n "$rec" ] || fail "$file:$line: no block opens there"
  IFS=$'\t' read -r _ lang marker <<<"$rec"
  marker=${marker#-}
  scratch
  bodyfile="$work/block"
  body "$file" "$line" >"$bodyfile"
  kind=$(classify "$lang" "$marker" "$bodyfile")
  echo "$file:$line: $kind"
  # The block after this one, if it is an output block, is what this one must print.
  IFS=$'\t' read -r next_line next_lang next_marker < <(blocks "$file" | awk -F'\t' -v l="$line" 'found { print; exit } $1 == l { found = 1 }')
  local expect=""
  if [ -n "${next_line:-}" ] && [ "${next_marker%% *}" = output ]; then
    expect="$work/expected"
    body "$file" "$next_line" >"$expect"
  fi
  case "$kind" in
    skip) echo "not run: ${marker#skip }"; exit 77 ;;
    unclassified*) fail "$file:$line is not classified; mark it (see tests/docs_examples.sh)" ;;
    output)
      local prev_line prev_lang prev_marker prev_kind
      IFS=$'\t' read -r prev_line prev_lang prev_marker < <(blocks "$file" | awk -F'\t' -v l="$line" '$1 == l { print p; exit } { p = $0 }')
      [ -n "${prev_line:-}" ] || fail "an output block with no block before it"
      body "$file" "$prev_line" >"$work/prev"
      prev_kind=$(classify "$prev_lang" "$prev_marker" "$work/prev")
      case "$prev_kind" in
        program|fragment|script) echo "compared with the output of $file:$prev_line ($prev_kind) by that block's test" ;;
        *) fail "an output block must follow a program, fragment or script, not $prev_kind" ;;
      esac ;;
    program|fragment)
      run_cpp "$kind" "$marker" "$bodyfile"
      if [ -n "$expect" ]; then
        diff -u "$expect" "$work/stdout" || fail "the output differs from the block at $file:$next_line"
      fi ;;
    script)
      local opt
      for opt in $marker; do
        case "$opt" in
          script) ;;
          needs=*) [ -w "${opt#needs=}" ] || { echo "not run: ${opt#needs=} is absent or not writable"; exit 77; } ;;
          *) fail "unknown script option '$opt'" ;;
        esac
      done
      (cd "$work" && bash -e "$bodyfile" >"$work/stdout") || fail "the script exited with status $?"
      cat "$work/stdout"
      if [ -n "$expect" ]; then
        diff -u "$expect" "$work/stdout" || fail "the output differs from the block at $file:$next_line"
      fi ;;
    session) run_session "$bodyfile" ;;
    *) fail "unknown kind $kind" ;;
  esac
}

case "${1:-}" in
  list) shift; list "$@" ;;
  check)
    bad=$(list $(docs_of "$2") | grep ' unclassified')
    [ -z "$bad" ] || { printf '%s\n' "$bad" >&2; fail "unclassified blocks (mark them: see tests/docs_examples.sh)"; }
    echo "every block is classified" ;;
  run) run_one "$2" "$3" ;;
  all)
    status=0
    while read -r where _; do
      if ! (run_one "${where%:*}" "${where##*:}" >/dev/null 2>&1; r=$?; [ $r -eq 0 ] || [ $r -eq 77 ]); then
        echo "FAILED: $where" >&2; status=1
      fi
    done < <(list $(docs_of "$2"))
    exit $status ;;
  *) echo "usage: $0 list FILE... | check ROOT | run FILE LINE | all ROOT" >&2; exit 2 ;;
esac
