#!/bin/sh
# Creates the login the demo's requests read the source with: its name and password are the compose
# secrets demosourceuser and demosourcepassword, the same secrets the metadata and publish services read.
# It can read the two demo schemas and nothing else. Run by the PostgreSQL image on its first start,
# after 01-demo-data.sql; SECRETS_DIR only exists for testing this script outside a container.
set -eu
secrets="${SECRETS_DIR:-/run/secrets}"
reader=$(tr -d '\r\n' < "$secrets/demosourceuser")
password=$(tr -d '\r\n' < "$secrets/demosourcepassword")
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
  --set=reader="$reader" --set=password="$password" <<'SQL'
create role :"reader" login password :'password';
grant usage on schema clinical, reference to :"reader";
grant select on all tables in schema clinical, reference to :"reader";
SQL
