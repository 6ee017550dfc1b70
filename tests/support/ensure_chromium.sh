#!/usr/bin/env bash
# Make Debian's headless Chromium available for the browser tests (tests/test_report.py, marked
# `browser`). Idempotent: does nothing when /usr/bin/chromium already runs. Installs the Debian
# packages `chromium` and `chromium-driver` when apt-get can (root, or passwordless sudo);
# otherwise explains why and exits 0, so the browser tests skip with that reason instead of
# failing the build. Browser downloads by test tools (`playwright install`) do not work here.
set -uo pipefail

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

if "$CHROMIUM" --version >/dev/null 2>&1; then
    echo "chromium: $("$CHROMIUM" --version)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium: not installed and apt-get is not available; browser tests will be skipped" >&2
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        echo "chromium: not installed and not root (no passwordless sudo); browser tests will be skipped" >&2
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
if "${SUDO[@]}" apt-get install -y --no-install-recommends chromium chromium-driver >/tmp/ensure_chromium.log 2>&1 \
    || { "${SUDO[@]}" apt-get update >>/tmp/ensure_chromium.log 2>&1 \
         && "${SUDO[@]}" apt-get install -y --no-install-recommends chromium chromium-driver >>/tmp/ensure_chromium.log 2>&1; }; then
    echo "chromium: installed $("$CHROMIUM" --version)"
else
    echo "chromium: apt-get install failed (see /tmp/ensure_chromium.log); browser tests will be skipped" >&2
    tail -5 /tmp/ensure_chromium.log >&2
fi
exit 0
