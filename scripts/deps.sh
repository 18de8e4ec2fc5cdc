# Sourced by the other scripts: installs, from Debian's packages, whatever the build lacks.
containers_install_deps() {
    # libfuse3-dev, fuse3 (fusermount3) and pkg-config (which finds libfuse3) for the optional
    # containers::fuse; the rest builds without them.
    local wanted=(cmake ninja-build g++ clang-14 libclang-rt-14-dev libboost-dev librange-v3-dev catch2 libbenchmark-dev libfuse3-dev fuse3 pkg-config "$@")
    local missing=()
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
