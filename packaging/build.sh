#!/usr/bin/env bash
# Build the one-folder app into dist/pointillist/ and prove it works: the frozen self-test must
# pass, and on Linux it runs once more with no network at all when the kernel allows it.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -e ".[packaging]"
start=$(date +%s)
.venv/bin/pyinstaller --noconfirm --clean --distpath dist --workpath build packaging/pointillist.spec
echo "build: $(( $(date +%s) - start )) s, $(du -sh dist/pointillist | cut -f1) in dist/pointillist"

app=dist/pointillist/pointillist
"$app" --self-test
# A new network namespace has no interfaces but a down loopback: nothing can be reached, so a
# self-test that needed the network would fail here (needs root or user namespaces).
if unshare --net --map-root-user true 2>/dev/null; then
    unshare --net --map-root-user "$app" --self-test
else
    echo "unshare is not allowed here: skipped the run without a network namespace"
fi
"$app" --time-to-window
