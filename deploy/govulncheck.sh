#!/usr/bin/env bash
# govulncheck without vuln.go.dev: builds the vulnerability database from the
# golang.org/x/vulndb module (its data/osv reports, fetched through the Go
# module proxy like any module) and points govulncheck at it with -db file://.
#
#   deploy/govulncheck.sh                 # scan ./... (exit 3 = vulnerabilities found)
#   deploy/govulncheck.sh -show verbose   # extra flags go to govulncheck
#   VULNDB_VERSION=latest deploy/govulncheck.sh   # the newest reports
#   NOVAREC_GO=local deploy/govulncheck.sh        # judge this machine's own Go instead
#
# Where vuln.go.dev is reachable, plain `go run golang.org/x/vuln/cmd/govulncheck@latest ./...`
# does the same with the live database.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

# Standard-library findings depend on the toolchain; judge the release
# toolchain the images are built with (deploy/Dockerfile GO_VERSION), not
# whatever Go this machine started with.
export GOTOOLCHAIN=${NOVAREC_GO:-go1.27.3}

VULN_VERSION=${VULN_VERSION:-v1.9.0}
VULNDB_VERSION=${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db=${VULNDB_DIR:-$work/db}

# Outside the repository, so go.mod is left alone.
cd "$work"
src=$(GOFLAGS=-mod=mod go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ ! -d "$src/data/osv" ]; then
  echo "govulncheck.sh: golang.org/x/vulndb@$VULNDB_VERSION has no data/osv" >&2
  exit 2
fi
echo "govulncheck.sh: indexing $(ls "$src/data/osv" | wc -l) reports of golang.org/x/vulndb@$VULNDB_VERSION" >&2
GOBIN="$work/bin" go install "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION"
GOBIN="$work/bin" go install "golang.org/x/vuln/cmd/govulncheck@$VULN_VERSION"
"$work/bin/indexdb" -vulns "$src/data/osv" -out "$db"

cd "$repo"
# Exit status: 0 clean, 3 vulnerabilities found in code that calls them.
rc=0
"$work/bin/govulncheck" -db "file://$db" "$@" ./... || rc=$?
exit "$rc"
