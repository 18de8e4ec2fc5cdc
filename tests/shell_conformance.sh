#!/usr/bin/env bash
# cgsh against the kernel: the same commands (mkdir, rmdir, echo -n VALUE > PATH, cat), run by bash
# in a scratch directory of the kernel's cgroup v1 cpuset hierarchy and by cgsh --porcelain over its
# own hierarchy, must give the same answer, line by line: "ok", "ok CONTENT" or "err ENAME".
# What this adds to tests/conformance/cpuset.sh (the same writes by bash, on the kernel and through
# a mount): cgsh's own side of them, its parser of quoted values and escapes (\xa0, \n), its echo as
# one write opened as a shell opens it (fs::open_mode::create: EACCES, EISDIR, ENOTDIR), and its
# porcelain escaping of what cat prints.
#   shell_conformance.sh CGSH [KERNEL_DIR]
# KERNEL_DIR defaults to /sys/fs/cgroup/cpuset; a directory of our own is made in it and always
# removed. Skips (exit 0, with a message) where it is not writable.
set -euo pipefail
cgsh=$1
root=${2:-/sys/fs/cgroup/cpuset}
fail() { echo "FAIL: $*" >&2; exit 1; }
if [ ! -w "$root/tasks" ]; then echo "shell conformance: skipped, $root is not writable"; exit 0; fi
scratch="$root/containers-conformance-$$-$RANDOM"
mkdir "$scratch"
cleanup() { rmdir "$scratch"/*/ 2>/dev/null || true; rmdir "$scratch" 2>/dev/null || true; }
trap cleanup EXIT
cat "$root/cpuset.cpus" > "$scratch/cpuset.cpus"
cat "$root/cpuset.mems" > "$scratch/cpuset.mems"

# One command a line; VALUE in double quotes with the escapes both printf %b and cgsh know.
commands=(
  'mkdir /a'
  'echo -n "0" > /a/cpuset.mems'
  'echo -n "all" > /a/cpuset.cpus'
  'cat /a/cpuset.cpus'
  'echo -n "0\xa0" > /a/cpuset.cpus'
  'cat /a/cpuset.cpus'
  'echo -n "0,\n1:1/1" > /a/cpuset.cpus'
  'echo -n "0-N:1/2" > /a/cpuset.cpus'
  'cat /a/cpuset.cpus'
  'echo -n "0,\n1" > /a/cpuset.cpus'
  'cat /a/cpuset.cpus'
  'echo -n "4294967295" > /a/cpuset.cpus'
  'echo -n "4294967296" > /a/cpuset.cpus'
  'echo -n "1" > /a/release_agent'
  'echo -n "1" > /a/cgroup.sane_behavior'
  'echo -n "1" > /a/cpuset.memory_pressure_enabled'
  'echo -n "1" > /a/nofile'
  'echo -n "1" > /a/tasks/'
  'echo -n "1" > /a/nodir/'
  'echo -n "1" > /nodir/x'
  'echo -n "1" > /a'
  'echo -n "1" > /a/tasks/x'
  'echo -n "4294967296" > /a/cpuset.mem_hardwall'
  'cat /a/cpuset.mem_hardwall'
  'echo -n "4294967297" > /a/cpuset.memory_migrate'
  'cat /a/cpuset.memory_migrate'
  'echo -n "4294967296" > /a/notify_on_release'
  'cat /a/notify_on_release'
  'echo -n "-+1" > /a/cpuset.sched_relax_domain_level'
  'echo -n "-0" > /a/cpuset.sched_relax_domain_level'
  'cat /a/cpuset.sched_relax_domain_level'
  'echo -n "" > /a/cpuset.effective_cpus'
  'echo -n "0" > /a/cpuset.effective_cpus'
  'rmdir /a'
)

errname() {
  case "$1" in
    *"Permission denied") echo EACCES ;; *"No such file or directory") echo ENOENT ;;
    *"Is a directory") echo EISDIR ;; *"Not a directory") echo ENOTDIR ;;
    *"Invalid argument") echo EINVAL ;; *"Argument list too long") echo E2BIG ;;
    *"Numerical result out of range") echo ERANGE ;; *"Value too large for defined data type") echo EOVERFLOW ;;
    *"No space left on device") echo ENOSPC ;; *"Device or resource busy") echo EBUSY ;;
    *"File exists") echo EEXIST ;; *) echo "UNKNOWN($1)" ;;
  esac
}
# cgsh's porcelain escaping of output, for printable text with newlines and tabs.
escape() { local s=${1//\\/\\\\}; s=${s//$'\n'/\\n}; printf '%s' "${s//$'\t'/\\t}"; }

kernel() {  # runs one command on the kernel, answers as cgsh --porcelain would
  local line=$1 op path value out
  op=${line%% *}
  path=$scratch${line##* }
  case "$op" in
    mkdir|rmdir) if out=$($op "$path" 2>&1); then echo ok; else echo "err $(errname "$out")"; fi ;;
    cat) if out=$(cat "$path" 2>&1; echo x); then echo "ok $(escape "${out%x}")"; else echo "err $(errname "${out%x}")"; fi ;;
    echo)
      value=${line#*\"}; value=${value%\"*}
      # One write(2), as the echo of cgsh makes: the echo of bash is line-buffered and would write
      # "0,\n1" in two pieces. dd opens as a shell redirection does (O_WRONLY, O_CREAT, O_TRUNC).
      if out=$(printf '%b' "$value" | dd of="$path" bs=1M iflag=fullblock status=none 2>&1); then echo ok; else echo "err $(errname "$out")"; fi ;;
  esac
}

library=$(printf '%s\n' "${commands[@]}" | "$cgsh" --porcelain 2>/dev/null || true)
mapfile -t lib_lines <<<"$library"
[ ${#lib_lines[@]} -eq ${#commands[@]} ] || fail "cgsh gave ${#lib_lines[@]} lines for ${#commands[@]} commands"
status=0
for i in "${!commands[@]}"; do
  k=$(kernel "${commands[$i]}")
  if [ "$k" != "${lib_lines[$i]}" ]; then
    echo "MISMATCH: ${commands[$i]}: kernel '$k', cgsh '${lib_lines[$i]}'" >&2
    status=1
  fi
done
[ $status -eq 0 ] || fail "cgsh and the kernel disagree"
echo "shell conformance: ${#commands[@]} commands agree with the kernel"
