# Sourced by the conformance scripts in this directory. Each script takes one argument, DIR: an
# empty group directory, made by the runner, of a hierarchy with that script's subsystem (the
# kernel's v1 hierarchy, or a mount of the library's). It runs real shell commands there and prints
# one line per step; the transcripts of the two directories must be identical. run.sh runs a script
# on both (one CTest test per script); a script for subsystem NAME is named NAME.sh, or says
# "# hierarchy: NAME" in a line of its own. The runner gives CONFORM_TASK, a task that the side's
# freezer can freeze (see run.sh); a script that needs other tasks starts its own and masks their
# ids in what it prints.

# step NAME COMMAND...: runs COMMAND with bash -c and prints "NAME: STATUS OUTPUT", where OUTPUT is
# what the command wrote to standard output and error, its newlines as '|'.
step() {
    local name=$1
    shift
    local out rc
    out=$(bash -c "$*" 2>&1)
    rc=$?
    printf '%s: %d %s\n' "$name" "$rc" "$(printf '%s' "$out" | tr '\n' '|')"
}
