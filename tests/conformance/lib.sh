# Sourced by the conformance scripts in this directory. Each script takes one argument, DIR: an
# empty group directory, made by the runner, of a hierarchy with that script's subsystem (the
# kernel's v1 hierarchy, or a mount of the library's). It runs real shell commands there and prints
# one line per step; the transcripts of the two directories must be identical.

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
