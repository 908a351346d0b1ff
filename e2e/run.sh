#!/usr/bin/env bash
# Runs the dashboard's browser tests: installs Debian's chromium if it is
# missing (as root, non-interactive), then runs the tests of this module.
# Nothing is downloaded at test time: the browser is the package's.
# Screenshots land in e2e/screenshots/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x /usr/bin/chromium ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "e2e: /usr/bin/chromium is missing; run this script as root to install Debian's chromium" >&2
		exit 2
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

go vet ./...
go mod tidy -diff
rm -rf screenshots
go test -count=1 -timeout 15m "$@" ./...
echo "e2e: screenshots in $(pwd)/screenshots"
