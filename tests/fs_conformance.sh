#!/usr/bin/env bash
# Shell conformance: drives a cgroup v1 cpuset directory with real commands (mkdir, echo >, cat,
# ls, rmdir, rm, mv, ln, touch, stat) and prints one line per step: the step, the exit status and
# what the command said (standard output and error, newlines as '|'). Run it in a kernel scratch
# directory under /sys/fs/cgroup/cpuset and in a mount of the library (containers::fuse); the two
# transcripts must be identical.
#   fs_conformance.sh DIR     (DIR: an existing cpuset directory with CPUs and memory nodes)
set -u
source "$(dirname "$0")/conformance/lib.sh"
cd "$1" || exit 2
sleep 300 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT

step "mkdir" mkdir a
step "mkdir again" mkdir a
step "mkdir child" mkdir a/b
step "mkdir in a file" mkdir a/tasks/x
step "mkdir no parent" mkdir nope/x
step "ls" ls a
step "ls a file" ls a/tasks
step "modes" "stat -c '%A %s %n' a a/tasks a/cpuset.effective_cpus a/cpuset.memory_pressure a/notify_on_release"
step "cat empty cpus" cat a/cpuset.cpus
step "cat tasks" cat a/tasks
step "cat a directory" cat a
step "cat nothing" cat a/nope
step "attach to an empty cpuset" "echo $pid > a/tasks"
step "set cpus" "echo 0 > a/cpuset.cpus"
step "cat cpus" cat a/cpuset.cpus
step "set bad cpus" "echo 99999 > a/cpuset.cpus"
step "set garbage cpus" "echo x-y > a/cpuset.cpus"
step "set mems" "echo 0 > a/cpuset.mems"
step "attach" "echo $pid > a/tasks"
step "tasks" "sed s/^$pid\$/PID/ a/tasks"
step "procs" "sed s/^$pid\$/PID/ a/cgroup.procs"
step "attach garbage" "echo abc > a/tasks"
step "attach no such task" "echo 999999999 > a/tasks"
step "flag" "echo 1 > a/notify_on_release && cat a/notify_on_release"
step "bad flag" "echo 2 > a/notify_on_release; cat a/notify_on_release"
step "append" "echo 0 >> a/notify_on_release && cat a/notify_on_release"
step "printf without newline" "printf 1 > a/cgroup.clone_children && cat a/cgroup.clone_children"
step "write a read-only file" "echo 1 > a/cpuset.effective_cpus"
step "create a file" "echo 1 > a/no_such_file"
step "touch" touch a/tasks
step "touch a new file" touch a/newfile
step "rm a file" rm a/tasks
step "rm nothing" rm a/nope
step "mv a file" mv a/tasks a/tasks2
step "ln -s" ln -s tasks a/link
step "ln" ln a/tasks a/hard
step "mkfifo" mkfifo a/fifo
step "rmdir busy (child, task)" rmdir a
step "rmdir a file" rmdir a/tasks
step "rmdir child" rmdir a/b
step "rmdir busy (task)" rmdir a
step "detach" "echo $pid > tasks"
step "tasks after" cat a/tasks
step "rmdir" rmdir a
step "rmdir again" rmdir a
step "cat after rmdir" cat a/tasks
step "ls after rmdir" ls a
