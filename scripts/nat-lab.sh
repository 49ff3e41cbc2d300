#!/usr/bin/env bash
# The NAT lab: builds network namespaces for the internet and home routers (cone and symmetric
# iptables NAT), runs real hail daemons in them, and checks that calls connect in every pairing;
# then measures setup time and the path chosen for each row of the matrix.
# Needs root (namespaces, iptables). Everything it creates is removed afterwards, even on failure;
# no packet leaves the namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
hail_install_deps
if [ "$(id -u)" != 0 ]; then
  hail_fail "the NAT lab builds network namespaces: run it as root (sudo $0)"
fi
hail_say "NAT lab tests"
cargo test --locked --test nat_lab --test nat_calls -- --test-threads 2
hail_say "NAT matrix benchmark (JSON on stdout; table in docs/performance.md)"
cargo bench --locked --bench nat_matrix -- "${1:-5}"
