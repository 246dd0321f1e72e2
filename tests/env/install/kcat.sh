#!/usr/bin/env bash
# kcat (librdkafka's command-line client) from Debian, for tests/compat/test_kcat.py.
set -euo pipefail
. "$(dirname "$0")/../common.sh"
apt_install kcat
command -v kcat >/dev/null
