#!/usr/bin/env bash
# pids through real shell commands: pids.max's parsing and limits, hierarchical pids.current,
# pids.peak and pids.events, and moves past a limit, which the kernel never refuses. (A fork
# refused at a limit is not here: the library sees the forks it is told of, not a shell's; see the
# oracle case in tests/pids_test.cpp.)
#   pids.sh DIR     (run by run.sh; see lib.sh)
set -u
source "$(dirname "$0")/lib.sh"
cd "$1" || exit 2
sleep 300 &
p1=$!
sleep 300 &
p2=$!
trap 'kill $p1 $p2 2>/dev/null' EXIT
put() { printf '%b' "$1" | dd of="$2" bs=1M iflag=fullblock status=none; }
export -f put
mask() { sed -e "s/^$p1\$/P1/" -e "s/^$p2\$/P2/" "$1" | sort; }
export -f mask
export p1 p2

step "mkdir" "mkdir a && mkdir a/b"
step "ls" ls a
step "modes" "stat -c '%A %s %n' a/pids.max a/pids.current a/pids.peak a/pids.events"
step "defaults" "grep -H . a/pids.max a/pids.current a/pids.peak a/pids.events"
for v in '10' ' 5 \n' '0x10' 'max' '4194304' '4194305' '-1' 'MAX' '99999999999999999999' '' '\n' 'max\n' '1'; do
    step "pids.max '$v'" "put '$v' a/pids.max; cat a/pids.max"
done
step "the top has no pids.max" "cat ../pids.max"
step "a task" "echo $p1 > a/b/tasks && grep -H . a/pids.current a/b/pids.current a/pids.peak a/b/pids.peak"
step "a move past the limit" "echo $p2 > a/b/tasks && grep -H . a/pids.current a/b/pids.current"
step "tasks" "mask a/b/tasks"
step "peaks" "grep -H . a/pids.peak a/b/pids.peak"
step "events" "grep -H . a/pids.events a/b/pids.events"
step "a write to pids.current" "put 0 a/pids.current"
step "a write to pids.events" "put 0 a/pids.events"
step "a move out" "echo $p1 > tasks && grep -H . a/pids.current a/b/pids.current a/pids.peak"
step "raise the limit" "put max a/pids.max && cat a/pids.max"
step "rmdir busy" rmdir a/b
step "detach" "echo $p2 > tasks && grep -H . a/pids.current a/b/pids.current"
step "rmdir" "rmdir a/b && rmdir a"
