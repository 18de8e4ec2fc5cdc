#!/usr/bin/env bash
# The core files and the filesystem itself: mkdir, rmdir, ls, stat, cat, echo > tasks, the flag
# files, and what cgroupfs refuses (new files, rm, mv, ln, mkfifo). Core files are the same in
# every hierarchy; pids needs no setup before a task may join a group.
# hierarchy: pids
#   core.sh DIR     (run by run.sh; see lib.sh)
set -u
source "$(dirname "$0")/lib.sh"
cd "$1" || exit 2
sleep 300 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT

step "mkdir" mkdir a
step "mkdir again" mkdir a
step "mkdir child" mkdir a/b
step "mkdir in a file" mkdir a/tasks/x
step "mkdir no parent" mkdir nope/x
step "mkdir a core file's name" mkdir a/tasks
for n in . .. "\$'a\\nb'" release_agent cgroup.sane_behavior "'a b'" "\$'\\x01\\x7f'" "\$(printf %0300d 0)" "\$(printf %04000d 0)" "\$(printf %05000d 0)"; do
    step "mkdir name $n" "mkdir a/$n && rmdir a/$n"
done
step "ls" ls a
step "ls a file" ls a/tasks
step "modes" "stat -c '%A %s %n' a a/tasks a/cgroup.procs a/notify_on_release a/cgroup.clone_children"
step "cat tasks" cat a/tasks
step "cat a directory" cat a
step "cat nothing" cat a/nope
step "attach" "echo $pid > a/tasks"
step "tasks" "sed s/^$pid\$/PID/ a/tasks"
step "procs" "sed s/^$pid\$/PID/ a/cgroup.procs"
step "attach garbage" "echo abc > a/tasks"
step "attach no such task" "echo 999999999 > a/tasks"
step "flag" "echo 1 > a/notify_on_release && cat a/notify_on_release"
step "bad flag" "echo 2 > a/notify_on_release; cat a/notify_on_release"
step "append" "echo 0 >> a/notify_on_release && cat a/notify_on_release"
step "printf without newline" "printf 1 > a/cgroup.clone_children && cat a/cgroup.clone_children"
step "create a file" "echo 1 > a/no_such_file"
step "create in a file" "echo 1 > a/tasks/x"
step "touch" touch a/tasks
step "touch a new file" touch a/newfile
step "rm a file" rm a/tasks
step "rm nothing" rm a/nope
step "rm a directory" "rm -d a/b && mkdir a/b"
step "ln -s" ln -s tasks a/link
step "ln" ln a/tasks a/hard
step "mkfifo" mkfifo a/fifo

# rename: cgroup v1 renames a group only within its parent (cgroup1_rename). The library cannot
# rename (names are read lock-free and immutable), so renaming in place is left out here: the
# errors below are the kernel's on both.
step "mv a file" mv a/tasks a/tasks2
step "mv a group to another parent" "mkdir a/c && mv -T a/b a/c/b"
step "mv a group onto a group" "mv -T a/b a/c"
step "mv a group onto a file" "mv -T a/b a/tasks"
step "mv a group onto itself" "mv -T a/b a/b"
step "mv nothing" "mv -T a/nope a/x"
step "mv to a name with a newline" "mv -T a/b \$'a/x\\ny'"
step "mv into a file" "mv -T a/b a/tasks/x"
step "ls after mv" "ls a && rmdir a/c"

# chmod and chown, which kernfs keeps per node; the modes then decide for users other than root.
nobody="setpriv --reuid=65534 --regid=65534 --clear-groups --"
step "owners" "stat -c '%a %u %g %n' a a/tasks a/notify_on_release a/pids.current"
step "chmod a file" "chmod 7777 a/tasks && stat -c '%a %u %g' a/tasks"
step "root ignores the modes" "chmod 0 a/tasks && stat -c '%a' a/tasks && echo $pid > a/tasks && sed s/^$pid\$/PID/ a/tasks"
step "chmod back" "chmod 644 a/tasks && stat -c '%a' a/tasks"
step "chmod a directory" "chmod 700 a && stat -c '%a' a && chmod 755 a"
step "chmod nothing" "chmod 644 a/nope"
step "nobody writes" "$nobody bash -c 'echo 1 > a/notify_on_release'"
step "nobody chmods" "$nobody chmod 666 a/notify_on_release"
step "chown a file" "chown 65534:65534 a/notify_on_release && stat -c '%a %u %g' a/notify_on_release"
step "its owner writes" "$nobody bash -c 'echo 1 > a/notify_on_release' && cat a/notify_on_release"
step "its owner chmods" "$nobody chmod 600 a/notify_on_release && stat -c '%a' a/notify_on_release"
step "its owner gives it away" "$nobody chown 0 a/notify_on_release"
step "its owner changes its group" "$nobody chgrp 0 a/notify_on_release"
step "chown clears set-id bits" "chmod 6755 a/notify_on_release && chown 0:0 a/notify_on_release && stat -c '%a %u %g' a/notify_on_release"
step "a file nobody may read" "chmod 0 a/pids.current && $nobody cat a/pids.current; cat a/pids.current"
step "nobody makes a group" "$nobody mkdir a/m"
step "chown a directory" "chown 65534:65534 a && stat -c '%a %u %g' a"
step "its owner makes a group" "$nobody mkdir a/m && stat -c '%a %u %g %n' a/m a/m/tasks a/m/pids.max"
step "with its umask" "$nobody bash -c 'umask 077 && mkdir a/u' && stat -c '%a %u %g %n' a/u a/u/tasks"
step "its owner removes them" "$nobody rmdir a/m a/u"
step "its owner lists it at 700" "chmod 700 a && $nobody ls a"
step "nobody lists it at 700" "chown 0:0 a && $nobody ls a"
step "chmod and chown back" "chmod 755 a && chmod 644 a/notify_on_release a/pids.current && stat -c '%a %u %g %n' a a/notify_on_release a/pids.current"

# Moving a task: the writer's effective user id must be root's or the task's real or saved one
# (cgroup v1's __cgroup1_procs_write), whoever owns the file; "0" names the writer.
step "nobody's group" "mkdir w && chown -R 65534:65534 w && stat -c '%u %g %n' w w/tasks w/cgroup.procs"
step "nobody moves root's task" "$nobody bash -c 'echo $pid > w/tasks'; cat w/tasks"
step "nobody moves root's process" "$nobody bash -c 'echo $pid > w/cgroup.procs'; cat w/tasks"
step "nobody moves its own" "$nobody bash -c 'sleep 300 & s=\$!; echo \$s > w/tasks; r=\$?; grep -cx \$s w/tasks; kill \$s; exit \$r'"
step "nobody moves itself" "$nobody bash -c 'echo 0 > w/tasks && grep -cx \$\$ w/tasks && echo 0 > w/cgroup.procs'"
step "rmdir nobody's group" rmdir w

step "rmdir busy (child, task)" rmdir a
step "rmdir a file" rmdir a/tasks
step "rmdir ." "cd a/b && rmdir ."
step "rmdir .." "cd a/b && rmdir .."
step "rmdir child" rmdir a/b
step "rmdir busy (task)" rmdir a
step "detach" "echo $pid > tasks"
step "tasks after" cat a/tasks
step "rmdir" rmdir a
step "rmdir again" rmdir a
step "cat after rmdir" cat a/tasks
step "ls after rmdir" ls a
