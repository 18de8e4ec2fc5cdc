#!/usr/bin/env bash
# cgsh for a person: `help`, errors that say what was wrong (with the line number when the input
# is a script, without it at a terminal), and a prompt only when standard input is a terminal.
set -euo pipefail
cgsh=$1
fail() { echo "FAIL: $*" >&2; exit 1; }

# help: every command on a line of its own, and nothing on standard error.
out=$("$cgsh" -c help 2>/tmp/cgsh_human_err.$$) || fail "help failed"
err=$(cat /tmp/cgsh_human_err.$$); rm -f /tmp/cgsh_human_err.$$
[ -z "$err" ] || fail "help wrote to standard error: $err"
for c in mkdir rmdir echo cat ls spawn fork exit affinity help; do
  [ "$(grep -c "^$c " <<<"$out")" -eq 1 ] || fail "help has no single line for $c: $out"
done
[ "$(wc -l <<<"$out")" -eq 10 ] || fail "help: $(wc -l <<<"$out") lines, expected 10"

# Each error, as a script (line numbers) would show it.
script='mkdri /x
echo $w > /a/tasks
mkdir /a
mkdir /a
echo 1 > /a/tasks
cat "/a/x
cat "/a/\q"
cat "/a/\x4"
fork a 2
exit 99999999999
mkdir
echo 1 /a
ls /nope
rmdir /nope
cat /a/nope
affinity 2147483647'
set +e
out=$("$cgsh" -c "$script" 2>/tmp/cgsh_human_err.$$)
status=$?
set -e
err=$(cat /tmp/cgsh_human_err.$$); rm -f /tmp/cgsh_human_err.$$
[ "$status" -eq 1 ] || fail "exit status $status, expected 1"
[ -z "$out" ] || fail "errors went to standard output: $out"
expected="cgsh: 1: unknown command 'mkdri'
cgsh: 2: unset variable \$w
cgsh: 4: mkdir /a: File exists
cgsh: 5: echo > /a/tasks: No space left on device
cgsh: 6: unterminated string
cgsh: 7: unknown escape '\\q'
cgsh: 8: \\x needs two hex digits
cgsh: 9: not a task id: 'a'
cgsh: 10: not a task id: '99999999999'
cgsh: 11: usage: mkdir PATH
cgsh: 12: usage: echo [-n] VALUE... > PATH
cgsh: 13: ls /nope: No such file or directory
cgsh: 14: rmdir /nope: No such file or directory
cgsh: 15: cat /a/nope: No such file or directory
cgsh: 16: affinity 2147483647: No such process"
[ "$err" = "$expected" ] || fail "errors:
$err
expected:
$expected"

# No prompt when standard input is not a terminal.
err=$(printf 'mkdir /a\n' | "$cgsh" 2>&1 >/dev/null)
[ -z "$err" ] || fail "a prompt or message without a terminal: $err"

# At a terminal: a prompt before each command, errors without line numbers.
if ! command -v script >/dev/null; then
  echo "SKIPPED: the prompt needs script(1) (bsdutils) for a terminal"
  exit 0
fi
tty_out=$(printf 'mkdir /a\nmkdir /a\nmkdri\n' | { script -qec "$cgsh" /dev/null || true; } | tr -d '\r')
prompts=$(grep -o 'cgsh> ' <<<"$tty_out" | wc -l)
[ "$prompts" -eq 4 ] || fail "$prompts prompts for 3 lines and the end of input, expected 4: $tty_out"
grep -q "cgsh: mkdir /a: File exists$" <<<"$tty_out" || fail "at a terminal: $tty_out"
grep -q "cgsh: unknown command 'mkdri'$" <<<"$tty_out" || fail "at a terminal: $tty_out"
if grep -q 'cgsh: [0-9]' <<<"$tty_out"; then fail "line numbers at a terminal: $tty_out"; fi
# --porcelain is for programs: no prompt even at a terminal.
tty_out=$(printf 'mkdir /a\n' | script -qec "$cgsh --porcelain" /dev/null | tr -d '\r')
if grep -q 'cgsh> ' <<<"$tty_out"; then fail "a prompt in porcelain mode: $tty_out"; fi
echo "cgsh: all checks passed"
