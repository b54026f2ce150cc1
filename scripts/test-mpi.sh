#!/usr/bin/env bash
# Tests the data-parallel fit over MPI (cargo feature `mpi`): installs Open MPI and
# libclang when missing, builds with the feature and runs tests/mpi.rs, which starts
# `mpirun -np 1, 2, 3` on this machine (oversubscribed past its cores).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-deps.sh mpi
# mpirun refuses to start as root unless told it may.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cargo test --release --features mpi --test mpi
