#!/usr/bin/env bash
# Quick-protocol N for keystone.issue (bcrypt cost 4) and keystone.validate on:
# real Keystone with cache none, real Keystone with memcached, the reference identity
# service. Target pinned to CPU 1, generator to CPU 0. Ends with `redline compare`.
# Usage: benchmarks/keystone_n.sh [RESULTS_DIR]   (about 15 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-results/keystone-n}
mkdir -p "$R"
RL=.venv/bin/redline
export REDLINE_LAB_PASSWORD=${REDLINE_LAB_PASSWORD:-$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')}
export OS_USERNAME=admin OS_PASSWORD=$REDLINE_LAB_PASSWORD OS_PROJECT_NAME=admin
S=$(mktemp -d)
export REDLINE_LAB_DIR=$S  # lab state here: runs find the lab behind the URL (config, hash cost, pids)
trap '$RL lab keystone down 2>/dev/null || true; $RL lab identity down 2>/dev/null || true' EXIT

search() {  # name scenario start
    $RL capacity --scenario "$2" --users 'bench-{0..3}' --users-project bench --token-pool 20 \
        --protocol quick --start "$3" --cpus 0 --results "$R" --name "$1" | tail -3 || true
}
url() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['url'])" "$1/state.json"; }

for cache in none memcached; do
    $RL lab keystone up --cache "$cache" --cpus 1 | head -1
    export OS_AUTH_URL=$(url "$S/keystone")
    if [[ $cache == none ]]; then search "keystone-$cache-issue" keystone.issue 5; search "keystone-$cache-validate" keystone.validate 2
    else search "keystone-$cache-issue" keystone.issue 40; search "keystone-$cache-validate" keystone.validate 80; fi
    $RL lab keystone down
done
$RL lab identity up --cpus 1 --workers 2 --users 4 | head -1
export OS_AUTH_URL=$(url "$S/identity")
search identity-issue keystone.issue 200
search identity-validate keystone.validate 1000
$RL lab identity down
$RL compare "$R"/*-keystone-none-issue "$R"/*-keystone-none-validate "$R"/*-keystone-memcached-issue \
    "$R"/*-keystone-memcached-validate "$R"/*-identity-issue "$R"/*-identity-validate --html "$R/compare.html"
