#!/usr/bin/env bash
# Offline Kubernetes manifest validation for tests/deploy/: kubernetes-validate (PyPI; bundles the
# OpenAPI-derived JSON schemas of each Kubernetes release) into the test virtualenv made by
# python.sh. Idempotent: pip runs only when the pinned version is not installed yet.
set -euo pipefail
. "$(dirname "$0")/../common.sh"
KUBERNETES_VALIDATE_VERSION="${KUBERNETES_VALIDATE_VERSION:-1.37.0}"
[ -x "$STRATA_VENV/bin/python" ] || bash "$STRATA_ROOT/tests/env/install/python.sh"
want="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
if stamp_ok validate "$want" && [ -x "$STRATA_VENV/bin/kubernetes-validate" ]; then
  exit 0
fi
log "pip install $want into $STRATA_VENV"
"$STRATA_VENV/bin/pip" install -q --disable-pip-version-check "$want"
"$STRATA_VENV/bin/kubernetes-validate" --version >/dev/null
stamp_set validate "$want"
