#!/usr/bin/env bash
# cpuset's files through real shell commands: modes, an empty cpuset refusing tasks, cpus and mems
# and their parser (bitmap_parselist: all, 0xa0, newlines, unsigned int regions), the flag
# files' field types, the write limits of read-only files, top-only files.
#   cpuset.sh DIR     (run by run.sh; see lib.sh)
set -u
source "$(dirname "$0")/lib.sh"
cd "$1" || exit 2
sleep 300 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
# put VALUE FILE: VALUE (printf %b escapes) in one write(2), opened as a shell redirection opens it
# (the echo of bash would write "0,\n1" in two pieces).
put() { printf '%b' "$1" | dd of="$2" bs=1M iflag=fullblock status=none; }
export -f put

step "mkdir" mkdir a
step "modes" "stat -c '%A %s %n' a/cpuset.cpus a/cpuset.effective_cpus a/cpuset.memory_pressure a/cpuset.mem_hardwall"
step "cat empty cpus" cat a/cpuset.cpus
step "attach to an empty cpuset" "echo $pid > a/tasks"
step "set cpus" "echo 0 > a/cpuset.cpus"
step "cat cpus" cat a/cpuset.cpus
step "set bad cpus" "echo 99999 > a/cpuset.cpus"
step "set garbage cpus" "echo x-y > a/cpuset.cpus"
step "set mems" "echo 0 > a/cpuset.mems"
step "attach" "echo $pid > a/tasks"
step "tasks" "sed s/^$pid\$/PID/ a/tasks"
step "write a read-only file" "echo 1 > a/cpuset.effective_cpus"
step "detach" "echo $pid > tasks"

# The parser and the field types, one write(2) each.
step "all" "put 'all' a/cpuset.cpus && cat a/cpuset.cpus"
step "0xa0 is white space" "put '0\\xa0' a/cpuset.cpus && cat a/cpuset.cpus"
step "a newline before a pattern" "put '0,\\n1:1/1' a/cpuset.cpus"
step "N in a region" "put '0-N:1/2' a/cpuset.cpus && cat a/cpuset.cpus"
step "a newline ends the list" "put '0,\\n1' a/cpuset.cpus && cat a/cpuset.cpus"
step "4294967295" "put '4294967295' a/cpuset.cpus"
step "4294967296" "put '4294967296' a/cpuset.cpus"
step "release_agent below the top" "put '1' a/release_agent"
step "sane_behavior below the top" "put '1' a/cgroup.sane_behavior"
step "memory_pressure_enabled below the top" "put '1' a/cpuset.memory_pressure_enabled"
step "no file" "put '1' a/nofile"
step "a file as a directory" "put '1' a/tasks/"
step "no directory" "put '1' a/nodir/"
step "no parent" "put '1' nodir/x"
step "a directory" "put '1' a"
step "in a file" "put '1' a/tasks/x"
step "an int flag takes 2^32 as 0" "put '4294967296' a/cpuset.mem_hardwall && cat a/cpuset.mem_hardwall"
step "an int flag takes 2^32+1 as 1" "put '4294967297' a/cpuset.memory_migrate && cat a/cpuset.memory_migrate"
step "a u64 flag takes 2^32 as 1" "put '4294967296' a/notify_on_release && cat a/notify_on_release"
step "-+1" "put '-+1' a/cpuset.sched_relax_domain_level"
step "-0" "put '-0' a/cpuset.sched_relax_domain_level && cat a/cpuset.sched_relax_domain_level"
step "an empty write to a read-only file" "put '' a/cpuset.effective_cpus"
step "a write to a read-only file" "put '0' a/cpuset.effective_cpus"
step "too long for a read-only file" "head -c 5000 /dev/zero | tr '\\\\0' 1 | dd of=a/cpuset.effective_cpus bs=1M iflag=fullblock status=none"
step "rmdir" rmdir a
