#!/bin/sh
# The system tools the tests drive, installed from Debian when missing, so that `make test` on a fresh machine
# (and CI) needs nothing more:
# - chromium: the browser tests (Playwright from PyPI, launched with the system browser's path);
# - promtool, from the prometheus package: tests/unit/test_monitoring.py checks the alert rules with it. Only
#   promtool is wanted: where systemd runs, the package's own server (it would take port 9090 from
#   docker-compose's Prometheus) is stopped and disabled again.
set -e
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
if [ -z "$missing" ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo -n"
else
    echo "missing for the tests:$missing; this user cannot install them: run 'apt-get install$missing' as root" >&2
    exit 1
fi
echo "installing Debian's$missing for the tests..."
$SUDO apt-get update -qq
# shellcheck disable=SC2086 # one word per package
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
case "$missing" in
*prometheus*)
    if [ -d /run/systemd/system ]; then
        $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
    ;;
esac
command -v chromium >/dev/null && command -v promtool >/dev/null
