#!/usr/bin/env bash
# Tests reading Parquet from object storage (cargo feature `object-store`) against a local
# S3-compatible server: moto's `moto_server` (PyPI `moto[server]`), started here on
# 127.0.0.1 and stopped on exit. Uses the Python venv of scripts/test-python.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
venv="${STREAMNMF_PY_VENV:-$target/python-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "moto[server]" boto3
port=$("$venv/bin/python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$target/moto.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=streamnmf AWS_SECRET_ACCESS_KEY=streamnmf
for _ in $(seq 50); do
  "$venv/bin/python" - <<'PY' 2>/dev/null && break || sleep 0.2
import boto3, os
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
s3.create_bucket(Bucket="streamnmf-test")
PY
done
cargo test --release --features object-store --test object_store
