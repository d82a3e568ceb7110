#!/usr/bin/env bash
# Make sure Debian's headless-capable Chromium and its WebDriver are installed, then print the
# browser's path (the only thing written to stdout).
#
#   scripts/ensure-chromium.sh      ->  /usr/bin/chromium
#
# Installs `chromium` and `chromium-driver` with apt-get when either is missing (root only;
# progress goes to stderr). Browser tests start it themselves, e.g.
#   chromium --headless --no-sandbox --disable-gpu --user-data-dir="$(mktemp -d)" --dump-dom URL
set -euo pipefail

readonly CHROMIUM=/usr/bin/chromium
readonly CHROMEDRIVER=/usr/bin/chromedriver
# A small CJK font, so screenshots of the zh-CN UI show characters instead of empty boxes.
readonly CJK_FONT=/usr/share/fonts/truetype/wqy/wqy-microhei.ttc

# stdout belongs to the path alone.
exec 3>&1 1>&2

die() {
    echo "ensure-chromium: $*"
    exit 1
}

if [[ ! -x $CHROMIUM || ! -x $CHROMEDRIVER || ! -f $CJK_FONT ]]; then
    [[ $(id -u) -eq 0 ]] ||
        die "chromium missing and not root: apt-get install chromium chromium-driver"
    echo "ensure-chromium: installing Debian's chromium and chromium-driver"
    # Serialise with scripts/pg-test.sh's install: concurrent `apt-get update`s fail on the lists
    # lock rather than wait for it.
    exec 8>>/var/lock/sopbot-apt.lock
    flock -w 900 8 || die "timed out waiting for /var/lock/sopbot-apt.lock"
    apt-get -q update || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 install -y \
        --no-install-recommends chromium chromium-driver fonts-wqy-microhei ||
        die "apt-get install chromium chromium-driver fonts-wqy-microhei failed"
    [[ -x $CHROMIUM ]] || die "$CHROMIUM still missing after install"
fi
echo "$CHROMIUM" >&3
