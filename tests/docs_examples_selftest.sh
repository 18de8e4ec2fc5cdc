#!/usr/bin/env bash
# The documentation runner (docs_examples.sh) refuses what it must: blocks nothing classifies,
# a session whose output differs, a program that fails or does not compile, a script that fails,
# an output block that differs or follows nothing runnable, a skip without a reason. Each case
# is a block of a page written here; the runner must fail exactly these.
set -uo pipefail
runner=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/docs_selftest.XXXXXX")
trap 'rm -rf "$dir"' EXIT
page=$dir/README.md
f='```'
cat >"$page" <<EOF
# A page of good and bad blocks

${f}cpp
int x = 1;
${f}

${f}
some text
${f}

<!-- example: skip -->
${f}sh
true
${f}

<!-- example: frobnicate -->
${f}sh
true
${f}

${f}cmake
project(x)
${f}

${f}sh
\$ echo hello
goodbye
${f}

${f}sh
\$ echo 'hello
world'
hello
world
\$ echo again
again
${f}

${f}cpp
int main() { return 1; }
${f}

${f}cpp
int main() { return undeclared; }
${f}

<!-- example: fragment include=<cstdio> -->
${f}cpp
std::puts(containers::cpumask{}.empty() ? "empty" : "not empty");
${f}

<!-- example: output -->
${f}
not empty
${f}

${f}sh
echo fine
false
${f}

${f}sh
\$ echo session
session
${f}

<!-- example: output -->
${f}
session
${f}

<!-- example: skip the reason is given -->
${f}sh
exit 1
${f}

${f}cpp
int main() {}
EOF
listing=$(bash "$runner" list "$page" | sed "s|^$page:||")
expected="3 unclassified: a cpp block without main() needs <!-- example: fragment ... -->
7 unclassified: a block without a language needs a marker (output, skip REASON)
12 unclassified: skip needs a reason
17 unclassified: unknown marker 'frobnicate'
21 unclassified: a cmake block needs a marker (skip REASON)
25 session
30 session
39 program
43 program
48 fragment
53 output
57 script
62 session
68 output
73 skip
77 unclassified: the fence is never closed"
[ "$listing" = "$expected" ] || fail "classification:
$listing
expected:
$expected"

# The verdict on each block: 0 passes, 1 fails, 77 skipped.
verdicts="3 1
7 1
12 1
17 1
21 1
25 1
30 0
39 1
43 1
48 1
53 0
57 1
62 0
68 1
73 77
77 1"
while read -r line want; do
  out=$(CXXFLAGS_DOCS="${CXXFLAGS_DOCS:-}" bash "$runner" run "$page" "$line" 2>&1)
  got=$?
  [ "$got" -eq "$want" ] || fail "block at line $line: status $got, expected $want; it said:
$out"
done <<<"$verdicts"

# check names every unclassified block and fails; a page without one passes.
out=$(bash "$runner" check "$dir" 2>&1) && fail "check passed a page with unclassified blocks"
[ "$(grep -c 'md:[0-9][0-9]* unclassified' <<<"$out")" -eq 6 ] || fail "check did not name the 6 blocks: $out"
printf '# fine\n\n<!-- example: skip nothing to run -->\n```sh\nx\n```\n' >"$page"
bash "$runner" check "$dir" >/dev/null || fail "check failed a page whose blocks are all classified"
echo "docs_examples.sh: all checks passed"
