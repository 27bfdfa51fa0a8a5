#!/usr/bin/env bash
# Quick-protocol N for keystone.issue (bcrypt cost 4) and keystone.validate on real
# Keystone (uWSGI 2×1, cache none: Keystone's shipped default, so every request reaches
# the database) over each database of the lab: SQLite, PostgreSQL and MariaDB on disk,
# PostgreSQL and MariaDB on tmpfs. Target pinned to CPU 1, generator to CPU 0.
# Ends with `redline compare`.
# Usage: benchmarks/keystone_databases.sh [RESULTS_DIR] [CONFIG…]
# (10 % resolution: validate with cache none runs at ~1–2/s, where a 2 % bisection takes
# more than 15 minutes per search; a full run of all five configurations was not done yet)
#   CONFIG is DATABASE or DATABASE-tmpfs, e.g. postgresql mariadb-tmpfs (default: all five)
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-results/keystone-databases}
shift || true
CONFIGS=("$@")
((${#CONFIGS[@]})) || CONFIGS=(sqlite postgresql postgresql-tmpfs mariadb mariadb-tmpfs)
mkdir -p "$R"
RL=.venv/bin/redline
export REDLINE_LAB_PASSWORD=${REDLINE_LAB_PASSWORD:-$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')}
export OS_USERNAME=admin OS_PASSWORD=$REDLINE_LAB_PASSWORD OS_PROJECT_NAME=admin
S=$(mktemp -d)
export REDLINE_LAB_DIR=$S  # lab state here: runs find the lab behind the URL (config, hash cost, pids)
trap '$RL lab keystone down 2>/dev/null || true' EXIT

search() {  # name scenario start
    $RL capacity --scenario "$2" --users 'bench-{0..3}' --users-project bench --token-pool 20 \
        --protocol quick --resolution 10% --start "$3" --cpus 0 --results "$R" --name "$1" | tail -3 || true
}
url() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['url'])" "$1/state.json"; }

runs=()
for cfg in "${CONFIGS[@]}"; do
    db=${cfg%-tmpfs}
    tmpfs=()
    [[ $cfg == *-tmpfs ]] && tmpfs=(--db-tmpfs)
    $RL lab keystone up --cache none --database "$db" "${tmpfs[@]}" --cpus 1 | sed -n 1p  # sed reads it all: head would end `up` by SIGPIPE
    export OS_AUTH_URL=$(url "$S/keystone")
    search "keystone-$cfg-issue" keystone.issue 5
    search "keystone-$cfg-validate" keystone.validate 2
    $RL lab keystone down
    runs+=("$R"/*-keystone-"$cfg"-issue "$R"/*-keystone-"$cfg"-validate)
done
$RL compare "${runs[@]}" --html "$R/compare.html"
