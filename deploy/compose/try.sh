#!/bin/sh
# Does what the CR8TOR CLI does against the compose stack, through the gateway with the gateway key:
# validate and package the demo's clinical dataset, then publish the project. Prints each reply.
# Usage: deploy/compose/try.sh [csv|duckdb]
# GATEWAY (http://localhost:8000) and SOURCE_HOST, SOURCE_PORT, SOURCE_DATABASE (source-db, 5432, research,
# as in allowed-sources.json) point it at another stack.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
gateway="${GATEWAY:-http://localhost:8000}"
format="${1:-csv}"
key="$(cat "$here/secrets/approvalserviceapikey")"
start="$(date -u +%Y%m%d_%H%M%S)"
project=DemoProject
source_host="${SOURCE_HOST:-source-db}"
source_port="${SOURCE_PORT:-5432}"
source_database="${SOURCE_DATABASE:-research}"

body=$(cat <<JSON
{"project_name": "$project", "project_start_time": "$start",
 "destination": {"name": "LSC", "type": "filestore", "format": "$format"},
 "source": {"type": "postgresql", "host_url": "$source_host", "port": $source_port, "database": "$source_database",
            "credentials": {"provider": "AzureKeyVault", "username_key": "demosourceuser",
                            "password_key": "demosourcepassword"}},
 "dataset": {"name": "clinical", "schema_name": "clinical", "description": "Synthetic clinical data",
             "staging_path": null, "publish_path": null,
             "tables": [{"name": "admissions"}, {"name": "lab_results"}, {"name": "patient_summary"}]}}
JSON
)
post() { # post PATH BODY: prints the reply, fails on a status other than 200
  echo "== POST $1"
  curl -sS --fail-with-body -H 'content-type: application/json' -H "x-api-key: $key" \
    --max-time 600 -d "$2" "$gateway$1"
  echo
}
post /project/validate "$body"
post /project/package "$body"
post /project/publish "{\"project_name\": \"$project\", \"project_start_time\": \"$start\",
  \"destination\": {\"name\": \"LSC\", \"type\": \"filestore\", \"format\": \"$format\"}}"
echo "Published to the volume lsc-production: production/$project/$start"
