#!/usr/bin/env bash
# Installs the system libraries streamnmf links against, when they are missing:
# OpenBLAS (Debian's libopenblas-dev), pkg-config, a font for `streamnmf plot`
# (fonts-dejavu-core) and Python's venv for the Python package's tests. Needs root or
# sudo for apt-get.
#
# Optional cargo features name what they need as arguments:
#   ./scripts/ensure-deps.sh mpi    Open MPI (libopenmpi-dev, openmpi-bin) and libclang
#                                   (rsmpi's bindings are generated at build time)
set -euo pipefail
need=()
for feature in "$@"; do
  case "$feature" in
    mpi)
      dpkg -s libopenmpi-dev >/dev/null 2>&1 || need+=(libopenmpi-dev)
      command -v mpirun >/dev/null 2>&1 || need+=(openmpi-bin)
      dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
      ;;
    object-store) ;; # pure Rust
    *) echo "ensure-deps: unknown feature '$feature' (known: mpi, object-store)" >&2; exit 2 ;;
  esac
done
[ -e /usr/include/x86_64-linux-gnu/cblas.h ] || [ -e /usr/include/cblas.h ] \
  || dpkg -s libopenblas-dev >/dev/null 2>&1 || need+=(libopenblas-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v cc >/dev/null 2>&1 || need+=(gcc)
# The Python package's tests build it into a virtual environment.
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need+=(python3-venv python3-pip)
# `streamnmf plot` draws its text with this font.
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >&2
fi
