#!/usr/bin/env bash
# Runs conformance scripts on the kernel and on the library, and requires identical transcripts.
#
#   run.sh SCRIPT...          (CGSH: the cgsh binary, default `cgsh` on the PATH)
#
# For each SCRIPT (tests/conformance/NAME.sh), the hierarchy is NAME, or the one named by a line
# "# hierarchy: NAME" in the script (core.sh runs in one that has no setup of its own). Then:
#   1. the kernel: a uniquely named group in /sys/fs/cgroup/NAME, the script run in it;
#   2. the library: `cgsh --mount DIR --subsystems NAME --allow-other` (a hierarchy with that one
#      subsystem, as each of the kernel's v1 hierarchies has), the same group made there, the script
#      run in it;
#   3. the two transcripts compared; the diff is printed when they differ.
# Both groups are always removed, and the mount undone, even on failure or a signal; tasks left in
# a kernel group are moved to the hierarchy's top first. In a cpuset hierarchy the group gets its
# parent's CPUs and memory nodes, on both sides, so that tasks may join it.
#
# Scripts get CONFORM_TASK: a task id that the side's own freezer can freeze (the kernel's side: a
# sleeping process the runner started; the library's: cgsh's main thread, which waits in
# sigwait). Write it only to `tasks`, never to cgroup.procs (on the library's side that would move
# the threads serving the mount). Mask it in transcripts (it differs between the sides).
#
# Skips (exit 0, "SKIPPED: why") where the kernel's hierarchy is not writable, or /dev/fuse is
# absent or mounting is not permitted.
set -u
here=$(cd "$(dirname "$0")" && pwd)
cgsh=${CGSH:-cgsh}
skip() { echo "SKIPPED: $*"; exit 0; }
fail() { echo "FAIL: $*" >&2; status=1; }

scratch=""   # the kernel's group, while it exists
root=""      # its hierarchy
mnt=""       # the library's mount point, while it exists
server=""    # cgsh --mount, while it runs
sleeper=""   # the kernel's side's task
child=""     # the script, while it runs
server_status=0
group=""     # the group's name, on both sides
work=$(mktemp -d "${TMPDIR:-/tmp}/containers-conform.XXXXXX") || exit 2

# Moves every task of DIR's groups to the top of ROOT and removes them, deepest first.
remove_groups() {
  local dir=$1 top=$2 g t
  while IFS= read -r g; do
    [ -w "$g/freezer.state" ] && echo THAWED > "$g/freezer.state" 2>/dev/null
    for _ in 1 2 3; do
      while read -r t; do echo "$t" > "$top/tasks" 2>/dev/null; done < "$g/tasks"
      rmdir "$g" 2>/dev/null && break
      sleep 0.1
    done
  done < <(find "$dir" -depth -type d 2>/dev/null)
}

cleanup() {
  if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null; child=""; fi
  if [ -n "$scratch" ] && [ -d "$scratch" ]; then
    remove_groups "$scratch" "$root"
    [ -d "$scratch" ] && echo "conform: could not remove $scratch" >&2
  fi
  scratch=""
  if [ -n "$server" ]; then
    # The library's groups too (which thaws cgsh's main thread, so that it takes SIGTERM).
    [ -n "$mnt" ] && [ -d "$mnt/$group" ] && remove_groups "$mnt/$group" "$mnt"
    kill -TERM "$server" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server" 2>/dev/null   # a main thread left frozen never takes SIGTERM
    wait "$server" 2>/dev/null
    server_status=$?                   # 0 when it unmounted and exited as asked (a sanitizer's report: not)
    server=""
  fi
  if [ -n "$mnt" ]; then
    if mountpoint -q "$mnt"; then fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null; fi
    rmdir "$mnt" 2>/dev/null
    mnt=""
  fi
  if [ -n "$sleeper" ]; then kill "$sleeper" 2>/dev/null; wait "$sleeper" 2>/dev/null; sleeper=""; fi
}
trap 'trap "" INT TERM HUP; cleanup; rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# A new group in TOP named NAME, with the parent's CPUs and nodes where it is a cpuset.
make_group() {
  local top=$1 name=$2
  mkdir "$top/$name" || return 1
  if [ -e "$top/cpuset.cpus" ]; then
    cat "$top/cpuset.cpus" > "$top/$name/cpuset.cpus" && cat "$top/cpuset.mems" > "$top/$name/cpuset.mems" || return 1
  fi
}

# run_script SCRIPT DIR OUT TASK: the transcript in OUT; fails if the script did not finish.
run_script() {
  local rc
  # In the background, so that a signal to the runner is handled at once (bash runs a trap only
  # once the foreground command is done).
  CONFORM_TASK=$4 timeout 300 bash "$1" "$2" > "$3" 2>&1 &
  child=$!
  wait "$child"
  rc=$?
  child=""
  [ "$rc" -eq 0 ] || { fail "$(basename "$1") exited with status $rc in $2"; return 1; }
}

status=0
[ $# -gt 0 ] || { echo "usage: run.sh SCRIPT..." >&2; exit 2; }
for script in "$@"; do
  name=$(basename "$script" .sh)
  hierarchy=$(sed -n 's/^# hierarchy: *\([a-z_]*\).*/\1/p' "$script" | head -n 1)
  hierarchy=${hierarchy:-$name}
  root=/sys/fs/cgroup/$hierarchy
  [ -w "$root/tasks" ] || skip "the kernel's cgroup v1 $hierarchy hierarchy is not mounted writable at $root"
  [ -w /dev/fuse ] || skip "/dev/fuse is absent or not writable: the library's side cannot be mounted"
  # Groups that a runner killed outright (SIGKILL runs no trap) left behind: its pid is gone.
  for old in "$root"/containers-conform-*-*/; do
    [ -d "$old" ] || continue
    pid=${old#"$root"/containers-conform-}
    pid=${pid%%-*}
    [[ "$pid" =~ ^[0-9]+$ ]] && [ ! -d "/proc/$pid" ] && remove_groups "${old%/}" "$root"
  done
  group=containers-conform-$$-$RANDOM

  # The kernel's side.
  sleep 600 &
  sleeper=$!
  scratch=$root/$group
  make_group "$root" "$group" || { fail "cannot make $scratch"; continue; }
  run_script "$script" "$scratch" "$work/$name.kernel" "$sleeper"
  cleanup

  # The library's side.
  mnt=$(mktemp -d "${TMPDIR:-/tmp}/containers-conform-mnt.XXXXXX") || exit 2
  "$cgsh" --mount "$mnt" --subsystems "$hierarchy" --allow-other 2> "$work/$name.cgsh" &
  server=$!
  for _ in $(seq 100); do
    [ -e "$mnt/tasks" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -e "$mnt/tasks" ]; then
    why=$(cat "$work/$name.cgsh")
    cleanup
    case "$why" in
      *"mount "*) skip "cannot mount with FUSE here: $why" ;;
      *) fail "cgsh did not serve $hierarchy: $why"; continue ;;
    esac
  fi
  make_group "$mnt" "$group" || { fail "cannot make the group in the mount"; cleanup; continue; }
  run_script "$script" "$mnt/$group" "$work/$name.library" "$server"
  cleanup
  [ "$server_status" -eq 0 ] || fail "cgsh --mount exited with status $server_status: $(cat "$work/$name.cgsh")"

  if [ ! -s "$work/$name.kernel" ]; then
    fail "$name: the kernel's transcript is empty"
  elif diff -u --label "kernel ($root)" --label "library (cgsh --mount)" "$work/$name.kernel" "$work/$name.library"; then
    echo "$name: $(wc -l < "$work/$name.kernel") steps give the same transcript on the kernel and through the mount"
  else
    fail "$name: the library's transcript differs from the kernel's (above)"
  fi
done
exit $status
