# Sourced by the scripts of tests/: where the test environment is cached and how to reach it.
# Everything fetched or built for tests lives outside the checkout, keyed by version, so a fresh
# clone reuses what an earlier run on the same machine already installed.
STRATA_CACHE="${STRATA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/strata-testenv}"
STRATA_VENV="$STRATA_CACHE/venv"
STRATA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export STRATA_CACHE STRATA_VENV STRATA_ROOT
mkdir -p "$STRATA_CACHE"

# log MESSAGE: one quiet progress line on stderr.
# Each line carries the seconds since this shell started, so a run's log shows where time went.
log() { printf '[testenv %ds] %s\n' "$SECONDS" "$*" >&2; }

# stamp_ok NAME CONTENT: true when the stamp NAME already records CONTENT (install done before).
stamp_ok() { [ -f "$STRATA_CACHE/stamps/$1" ] && [ "$(cat "$STRATA_CACHE/stamps/$1")" = "$2" ]; }
# stamp_set NAME CONTENT: record that the install NAME finished with CONTENT.
stamp_set() { mkdir -p "$STRATA_CACHE/stamps"; printf '%s' "$2" >"$STRATA_CACHE/stamps/$1"; }

# apt_install PKG...: installs the Debian packages that are missing, quietly. One apt-get at a
# time (the test command runs two install chains side by side, and apt-get fails at once on a
# lock another one holds).
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  (
    flock -w 1800 9 || { log "apt-get: lock $STRATA_CACHE/apt.lock held for 30 min"; exit 1; }
    if [ ! -f "$STRATA_CACHE/stamps/apt-updated" ]; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
      stamp_set apt-updated yes
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  ) 9>"$STRATA_CACHE/apt.lock"
}
