#!/usr/bin/env bash
# freezer through real shell commands: freezer.state's writes and transitions, self_freezing and
# parent_freezing, descendants frozen with their parent; then the same transitions with a task
# ($CONFORM_TASK, which the side's own freezer can freeze: see run.sh) moved between groups.
#   freezer.sh DIR     (run by run.sh; see lib.sh)
set -u
source "$(dirname "$0")/lib.sh"
cd "$1" || exit 2
task=${CONFORM_TASK:?run by run.sh, which gives a task to freeze}
put() { printf '%b' "$1" | dd of="$2" bs=1M iflag=fullblock status=none; }
# state GROUP: its freezer.state once it is no longer FREEZING (both freezers take a moment).
state() {
    local s
    for _ in $(seq 500); do
        s=$(cat "$1/freezer.state") || return 1
        [ "$s" != FREEZING ] && break
        sleep 0.01
    done
    echo "$s"
}
export -f put state

step "the top has no freezer.state" "cat ../freezer.state"
step "the top's freezer.state cannot be made" "echo FROZEN > ../freezer.state"
step "mkdir" mkdir a
step "ls" ls a
step "modes" "stat -c '%A %s %n' a/freezer.state a/freezer.self_freezing a/freezer.parent_freezing"
step "defaults" "grep -H . a/freezer.state a/freezer.self_freezing a/freezer.parent_freezing"
for v in 'FREEZING' 'frozen' 'FROZEN\n\n' 'FROZENX' 'FRO ZEN' '\n' '1'; do
    step "state '$v'" "put '$v' a/freezer.state; cat a/freezer.state"
done
step "self_freezing" "put 1 a/freezer.self_freezing"
step "parent_freezing" "put 0 a/freezer.parent_freezing"
step "freeze" "put ' FROZEN ' a/freezer.state; state a; cat a/freezer.self_freezing"
step "a child of a frozen group" "mkdir a/b && state a/b && grep -H . a/b/freezer.self_freezing a/b/freezer.parent_freezing"
step "thaw the child" "put THAWED a/b/freezer.state; state a/b"
step "freeze the child" "put FROZEN a/b/freezer.state"
step "thaw the parent" "put THAWED a/freezer.state; state a; state a/b; grep -H . a/b/freezer.self_freezing a/b/freezer.parent_freezing"
step "a grandchild" "mkdir a/b/c && state a/b/c && cat a/b/c/freezer.parent_freezing"
step "freeze the parent again" "put FROZEN a/freezer.state; put THAWED a/b/freezer.state; state a/b; state a/b/c"
step "rmdir frozen groups" "rmdir a/b/c && rmdir a/b"
step "thaw" "echo THAWED > a/freezer.state && state a"
step "rmdir" rmdir a

# With a task.
step "groups" "mkdir f && mkdir f/sub && mkdir t"
step "a task joins" "echo $task > f/tasks"
step "freeze it" "echo FROZEN > f/freezer.state && state f"
step "it does not run" "[ \"\$(awk '{ print \$3 }' /proc/$task/stat)\" != R ]"
step "moved out: thawed, and the group stays FROZEN" "echo $task > t/tasks && state t && state f"
step "into a group frozen by its parent" "echo $task > f/sub/tasks && state f/sub && state f"
step "thaw the child alone" "echo THAWED > f/sub/freezer.state && state f/sub"
step "thaw the parent" "echo THAWED > f/freezer.state && state f && state f/sub"
step "out" "echo $task > ../tasks && rmdir f/sub f t"
