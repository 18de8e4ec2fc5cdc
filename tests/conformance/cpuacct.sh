#!/usr/bin/env bash
# cpuacct through real shell commands, on idle groups (a busy group's numbers are compared in the
# accuracy test, tests/cpuacct_kernel_test.cpp): the files, their modes, and what a write takes
# (0 resets usage; anything else, or any other file, is refused).
#   cpuacct.sh DIR     (run by run.sh; see lib.sh)
set -u
source "$(dirname "$0")/lib.sh"
cd "$1" || exit 2
put() { printf '%b' "$1" | dd of="$2" bs=1M iflag=fullblock status=none; }
export -f put

step "mkdir" mkdir g
# usage_percpu* and usage_all are left out by the library (user space cannot see a thread's per-CPU
# split): listed apart from the rest.
step "ls" "ls g | grep -v -e '^cpuacct.usage_percpu' -e '^cpuacct.usage_all'"
step "modes" "stat -c '%A %s %n' g/cpuacct.usage g/cpuacct.usage_user g/cpuacct.usage_sys g/cpuacct.stat"
step "idle" "grep -H . g/cpuacct.usage g/cpuacct.usage_user g/cpuacct.usage_sys g/cpuacct.stat"
for v in '0' '0\n' '00' '0x0' '+0' '1' '1\n' ' 0' '0 ' '-0' '-1' 'abc' '0x' '18446744073709551615' '18446744073709551616'; do
    step "usage '$v'" "put '$v' g/cpuacct.usage"
done
step "usage_user" "put 0 g/cpuacct.usage_user"
step "usage_sys" "put 0 g/cpuacct.usage_sys"
step "stat" "put 0 g/cpuacct.stat"
step "echo 0" "echo 0 > g/cpuacct.usage && cat g/cpuacct.usage"
step "usage after" cat g/cpuacct.usage
step "mkdir a file's name" mkdir g/cpuacct.usage
step "rmdir" rmdir g
step "read after rmdir" cat g/cpuacct.usage
