#!/usr/bin/env bash
# cgsh end to end: porcelain answers, error lines and exit status, quoting, spawn/$NAME, the real
# affinity of a thread attached to a cpuset, and line-by-line execution through a pipe.
set -euo pipefail
cgsh=$1
fail() { echo "FAIL: $*" >&2; exit 1; }

script='# a comment, then blank
mkdir /a

mkdir /a
echo 1 > /a/notify_on_release
cat /a/notify_on_release
echo -n "0x0" > /a/notify_on_release
cat /a/notify_on_release
ls /a
mkdir "/a/we\"ird\tname\x21"
ls /a
echo 0 > /a/cpuset.cpus
echo 0 > /a/cpuset.mems
spawn worker
echo $worker > /a/tasks
rmdir /a
affinity $worker
echo $nobody > /a/tasks
frobnicate
cat "/a/unterminated
rmdir "/a/we\"ird\tname\x21"'
set +e
out=$(printf '%s\n' "$script" | "$cgsh" --porcelain 2>/tmp/cgsh_err.$$)
status=$?
set -e
err=$(cat /tmp/cgsh_err.$$); rm -f /tmp/cgsh_err.$$
[ "$status" -eq 1 ] || fail "exit status $status, expected 1"
mapfile -t lines <<<"$out"
files='cgroup.clone_children\ncgroup.procs\ncpu.cfs_burst_us\ncpu.cfs_period_us\ncpu.cfs_quota_us\ncpu.shares\ncpu.stat\ncpuacct.stat\ncpuacct.usage\ncpuacct.usage_sys\ncpuacct.usage_user\ncpuset.cpu_exclusive\ncpuset.cpus\ncpuset.effective_cpus\ncpuset.effective_mems\ncpuset.mem_exclusive\ncpuset.mem_hardwall\ncpuset.memory_migrate\ncpuset.memory_pressure\ncpuset.memory_spread_page\ncpuset.memory_spread_slab\ncpuset.mems\ncpuset.sched_load_balance\ncpuset.sched_relax_domain_level\nfreezer.parent_freezing\nfreezer.self_freezing\nfreezer.state\nnotify_on_release\npids.current\npids.events\npids.max\npids.peak\ntasks\n'
expected=(
  "ok"
  "err EEXIST"
  "ok"
  "ok 1\\n"
  "ok"
  "ok 0\\n"
  "ok $files"
  "ok"
  "ok we\"ird\\tname!\\n$files"
  "ok"
  "ok"
  "ok"
  "ok"
  "err EBUSY"
  "ok 0\\n"
  "err EINVAL"
  "err EINVAL"
  "err EINVAL"
  "ok"
)
[ ${#lines[@]} -eq ${#expected[@]} ] || fail "got ${#lines[@]} lines, expected ${#expected[@]}: $out"
for i in "${!expected[@]}"; do
  [ "${lines[$i]}" = "${expected[$i]}" ] || fail "line $i: got '${lines[$i]}', expected '${expected[$i]}'"
done
grep -q '^cgsh: 4: EEXIST (File exists)$' <<<"$err" || fail "stderr: $err"

# --porcelain: one command, one line, whatever bytes the output holds (carriage return, other
# control bytes, DEL, and multi-byte characters that some readers take as line breaks).
out=$(printf '%s\n' 'mkdir /c' 'mkdir "/c/r\rx\x01y\x7fz\xc2\x85w\xe2\x80\xa8v"' 'cat "/c/r\rx\x01y\x7fz\xc2\x85w\xe2\x80\xa8v/notify_on_release"' 'ls /c' | "$cgsh" --porcelain)
[ "$(printf '%s' "$out" | LC_ALL=C tr -d -c '\n\r\013\014\034\035\036' | wc -c)" -eq 3 ] || fail "porcelain output has line breaks inside answers: $(printf '%s' "$out" | od -c | head)"
mapfile -t lines <<<"$out"
[ ${#lines[@]} -eq 4 ] || fail "porcelain: ${#lines[@]} lines for 4 commands"
[ "${lines[3]}" = "ok r\\rx\\x01y\\x7fz\\xc2\\x85w\\xe2\\x80\\xa8v\\n$files" ] || fail "porcelain escapes: ${lines[3]}"

# echo > opens as a shell does, with O_CREAT: a missing file (a top-only one below the top among
# them) is EACCES, as the kernel's VFS answers; a missing directory on the way is still ENOENT.
out=$(printf '%s\n' 'mkdir /e' 'echo 1 > /e/release_agent' 'echo 1 > /e/nofile' 'echo 1 > /nodir/x' \
  'echo 1 > /e/tasks/' 'echo all > /e/cpuset.cpus' 'echo 4294967296 > /e/cpuset.mem_hardwall' \
  'cat /e/cpuset.mem_hardwall' | "$cgsh" --porcelain 2>/dev/null || true)
expected=$(printf '%s\n' ok 'err EACCES' 'err EACCES' 'err ENOENT' 'err EISDIR' ok ok 'ok 0\n')
[ "$out" = "$expected" ] || fail "echo > as a shell opens: $out"

# -c and plain output
[ "$("$cgsh" -c 'mkdir /x
cat /x/cgroup.clone_children')" = "0" ] || fail "-c"

# Line by line through a pipe: the answer to the first line comes before the second is sent.
coproc CG { "$cgsh" --porcelain; }
cg_pid=$CG_PID  # bash unsets CG_PID as soon as the coprocess ends
echo "mkdir /p" >&"${CG[1]}"
read -r -t 5 reply <&"${CG[0]}" || fail "no answer before the next line"
[ "$reply" = ok ] || fail "pipe: $reply"
echo "rmdir /p" >&"${CG[1]}"
read -r -t 5 reply <&"${CG[0]}"
[ "$reply" = ok ] || fail "pipe 2: $reply"
exec {CG[1]}>&-
set +e
wait "$cg_pid"
rc=$?
set -e
# 127: bash had already reaped it (and kept no status); anything else must be success.
[ "$rc" -eq 0 ] || [ "$rc" -eq 127 ] || fail "cgsh exited with $rc after its input closed"
echo "cgsh: all checks passed"
