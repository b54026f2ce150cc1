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
# Authentication starts after the 6 setup requests below: the bucket, a user allowed
# everything in S3 (the test's credentials) and a user allowed nothing (the permission
# error).
INITIAL_NO_AUTH_ACTION_COUNT=6 "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$target/moto.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  "$venv/bin/python" -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
  sleep 0.1
done
keys=$("$venv/bin/python" - "$port" <<'PY'
import json, sys, boto3
kw = dict(endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
          aws_access_key_id="setup", aws_secret_access_key="setup")
s3, iam = boto3.client("s3", **kw), boto3.client("iam", **kw)
s3.create_bucket(Bucket="streamnmf-test")
iam.create_user(UserName="writer")
iam.put_user_policy(UserName="writer", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
w = iam.create_access_key(UserName="writer")["AccessKey"]
iam.create_user(UserName="denied")
d = iam.create_access_key(UserName="denied")["AccessKey"]
print(w["AccessKeyId"], w["SecretAccessKey"], d["AccessKeyId"], d["SecretAccessKey"])
PY
)
read -r key secret denied_key denied_secret <<<"$keys"
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" \
  STREAMNMF_TEST_DENIED_KEY_ID="$denied_key" STREAMNMF_TEST_DENIED_SECRET="$denied_secret"
cargo test --release --features object-store --test object_store
