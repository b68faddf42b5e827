#!/bin/sh
# Creates the secret files compose.yaml mounts, under deploy/compose/secrets/ (git ignores them): the three
# API keys and the demo source login as random values, and the source database's administrator password.
# A file that exists is kept, so running it again changes nothing; delete a file to make a new value.
#
# The directory is private to you (0700); the files in it are 0644 because compose bind-mounts each file
# into the containers, where the services run as uid 1993 and PostgreSQL as uid 999, neither of which is
# you. Nobody else on this machine can reach them through the directory.
set -eu
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
mkdir -p "$dir"
chmod 700 "$dir"

random_hex() { # 24 random bytes as 48 hex digits
  od -An -N24 -tx1 /dev/urandom | tr -d ' \n'
}

make() { # make NAME VALUE: writes the file NAME unless it exists
  if [ -e "$dir/$1" ]; then
    echo "kept    $dir/$1"
  else
    (umask 022 && printf '%s\n' "$2" > "$dir/$1")
    echo "created $dir/$1"
  fi
}

make approvalserviceapikey "$(random_hex)"
make metadataserviceapikey "$(random_hex)"
make publishserviceapikey "$(random_hex)"
make demosourceuser cr8tor_demo_reader
make demosourcepassword "$(random_hex)"
make sourcedbadminpassword "$(random_hex)"
