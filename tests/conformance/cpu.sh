#!/usr/bin/env bash
# cpu through real shell commands: cpu.shares, cpu.cfs_period_us, cpu.cfs_quota_us and
# cpu.cfs_burst_us with good and bad values (their parsing, clamping and limits), cpu.stat (read
# before any quota is set: the kernel's period timer counts nr_periods on its own once one is),
# the hierarchical quota rule on a child, and a task in a group.
#   cpu.sh DIR     (run by run.sh; see lib.sh)
set -u
source "$(dirname "$0")/lib.sh"
cd "$1" || exit 2
sleep 300 &
p1=$!
trap 'kill $p1 2>/dev/null' EXIT
put() { printf '%b' "$1" | dd of="$2" bs=1M iflag=fullblock status=none; }
export -f put
export p1

step "mkdir" "mkdir a && mkdir a/c"
step "ls (cpu.idle, cpu.rt_* and cpu.stat.local left out: the library has none)" "ls a | grep -v -e '^cpu.idle$' -e '^cpu.rt_' -e '^cpu.stat.local$'"
step "modes" "stat -c '%A %s %n' a/cpu.shares a/cpu.cfs_period_us a/cpu.cfs_quota_us a/cpu.cfs_burst_us a/cpu.stat"
step "defaults" "grep -H . a/cpu.shares a/cpu.cfs_period_us a/cpu.cfs_quota_us a/cpu.cfs_burst_us"
step "cpu.stat" "cat a/cpu.stat"
step "write cpu.stat" "put 0 a/cpu.stat"
step "write cpu.stat nothing" "put '' a/cpu.stat; cat a/cpu.stat"
for v in 1024 0 1 3 262144 262145 18446744073709551615 18446744073709551616 -1 abc ' 5' '5 ' '5\n' 0x10 010 +5 '' 1024; do
    step "cpu.shares '$v'" "put '$v' a/cpu.shares; cat a/cpu.shares"
done
for v in 999 1000 1000000 1000001 0 -1 0x3e8 100000; do
    step "cpu.cfs_period_us '$v'" "put '$v' a/cpu.cfs_period_us; cat a/cpu.cfs_period_us"
done
for v in 0 999 1000 -1 -5 -9223372036854775808 17592186044415 17592186044416 9223372036854775808 ' 5000'; do
    step "cpu.cfs_quota_us '$v'" "put '$v' a/cpu.cfs_quota_us; cat a/cpu.cfs_quota_us"
done
step "burst past quota + burst's limit" "put 1 a/cpu.cfs_burst_us; cat a/cpu.cfs_burst_us"
step "quota 50000" "put 50000 a/cpu.cfs_quota_us; cat a/cpu.cfs_quota_us"
for v in 50000 50001 -1 0; do
    step "cpu.cfs_burst_us '$v' (quota 50000)" "put '$v' a/cpu.cfs_burst_us; cat a/cpu.cfs_burst_us"
done
step "quota below the burst" "put 50000 a/cpu.cfs_burst_us; put 40000 a/cpu.cfs_quota_us; cat a/cpu.cfs_quota_us; put 0 a/cpu.cfs_burst_us"
# The child's quota against its parent's (50000/100000 = 0.5).
step "child above its parent" "put 60000 a/c/cpu.cfs_quota_us; cat a/c/cpu.cfs_quota_us"
step "child at its parent" "put 50000 a/c/cpu.cfs_quota_us; cat a/c/cpu.cfs_quota_us"
step "child below" "put 40000 a/c/cpu.cfs_quota_us; cat a/c/cpu.cfs_quota_us"
step "parent below its child" "put 30000 a/cpu.cfs_quota_us; cat a/cpu.cfs_quota_us"
step "child's period shrinks" "put 50000 a/c/cpu.cfs_period_us; cat a/c/cpu.cfs_period_us"
step "child's period grows" "put 200000 a/c/cpu.cfs_period_us; put 100000 a/c/cpu.cfs_quota_us; cat a/c/cpu.cfs_quota_us"
step "child just above" "put 100001 a/c/cpu.cfs_quota_us; cat a/c/cpu.cfs_quota_us"
step "parent unlimited" "put -1 a/cpu.cfs_quota_us; put 100001 a/c/cpu.cfs_quota_us; cat a/c/cpu.cfs_quota_us"
step "parent limited again" "put 50000 a/cpu.cfs_quota_us; cat a/cpu.cfs_quota_us"
step "child unlimited" "put -1 a/c/cpu.cfs_quota_us; put 50000 a/cpu.cfs_quota_us; put -1 a/cpu.cfs_quota_us; grep -H . a/cpu.cfs_quota_us a/c/cpu.cfs_quota_us"
for v in 18446744073709551 18446744073709552 0; do
    step "cpu.cfs_burst_us '$v' (no quota)" "put '$v' a/cpu.cfs_burst_us; cat a/cpu.cfs_burst_us"
done
step "a task" "echo $p1 > a/c/tasks && sed s/^$p1\$/P1/ a/c/tasks"
step "shares with a task" "put 4096 a/c/cpu.shares; cat a/c/cpu.shares"
step "rmdir busy" rmdir a/c
step "detach" "echo $p1 > tasks && cat a/c/tasks"
step "rmdir" "rmdir a/c && rmdir a"
