#!/usr/bin/env bash
# Refreshes console/static/vendor/ from the npm registry (the versions pinned in
# console/package.json). The copied files are committed: the console serves them
# itself and never loads anything from a CDN at run time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/package.json" "$work/"
(cd "$work" && npm install --no-audit --no-fund --silent)
dst="$here/static/vendor"
mkdir -p "$dst/leaflet/images" "$dst/markercluster"
m="$work/node_modules"
cp "$m/leaflet/dist/leaflet.js" "$m/leaflet/dist/leaflet.css" "$m/leaflet/LICENSE" "$dst/leaflet/"
cp "$m/leaflet/dist/images/"* "$dst/leaflet/images/"
cp "$m/leaflet.markercluster/dist/leaflet.markercluster.js" \
   "$m/leaflet.markercluster/dist/MarkerCluster.css" \
   "$m/leaflet.markercluster/dist/MarkerCluster.Default.css" "$dst/markercluster/"
cp "$m/leaflet.markercluster/MIT-LICENCE.txt" "$dst/markercluster/LICENSE"
echo "console assets refreshed in $dst"
