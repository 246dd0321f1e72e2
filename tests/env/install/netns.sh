#!/usr/bin/env bash
# Network namespaces and packet filtering for the replicated-cluster suites (tests/cluster): `ip`
# (iproute2) to build a bridge with one namespace per broker, `nft` (nftables) to cut a broker off
# from the others while clients still reach it (the kernel here has no tc netem).
set -euo pipefail
. "$(dirname "$0")/../common.sh"
apt_install iproute2 nftables
command -v ip >/dev/null
command -v nft >/dev/null
