#!/usr/bin/env bash
# Copy the pinned npm packages' browser builds into webhooks/static/vendor, where the
# console loads them from (plain <script>, no bundler). The copies are committed, so a
# pip install serves the console with no npm and nothing fetched at run time.
#
#   bash web/vendor.sh           after `npm ci` (or `npm install chart.js@<new> --save-exact`)
#   bash web/vendor.sh --check   fail unless the committed copies are byte-identical to
#                                the pinned packages in web/node_modules (CI)
set -euo pipefail
cd "$(dirname "$0")"
dest=../webhooks/static/vendor
# "<file in node_modules> <name in vendor>" pairs.
files=(
    "node_modules/chart.js/dist/chart.umd.min.js chart.umd.min.js"
    "node_modules/chart.js/LICENSE.md chart.js-LICENSE.md"
)
check=0
[[ "${1:-}" == "--check" ]] && check=1
if [[ ! -d node_modules ]]; then
    echo "vendor.sh: web/node_modules is missing: run (cd web && npm ci) first" >&2
    exit 2
fi
# The installed package must be the pinned one (a stale node_modules proves nothing).
pinned=$(node -p 'require("./package.json").dependencies["chart.js"]')
installed=$(node -p 'require("./node_modules/chart.js/package.json").version')
if [[ "$pinned" != "$installed" ]]; then
    echo "vendor.sh: chart.js $installed installed but $pinned pinned: run npm ci" >&2
    exit 1
fi
mkdir -p "$dest"
status=0
for pair in "${files[@]}"; do
    read -r src name <<<"$pair"
    if (( check )); then
        if ! cmp -s "$src" "$dest/$name"; then
            echo "vendor.sh: $dest/$name differs from $src (chart.js $pinned): run bash web/vendor.sh" >&2
            status=1
        fi
    else
        cp "$src" "$dest/$name"
        echo "vendored $name (chart.js $pinned)"
    fi
done
(( check && status == 0 )) && echo "vendor.sh: webhooks/static/vendor matches chart.js $pinned"
exit $status
