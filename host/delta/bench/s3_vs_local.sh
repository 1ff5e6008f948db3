#!/usr/bin/env bash
# 200,000-row SKU Candidates ingest: local disk vs moto's S3 server on loopback (dev build of weir).
# host/delta/bench/s3_vs_local.sh, run from the repository root after `cargo test --workspace` (which builds weir and the moto
# virtual environment); WEIR and MOTO_PYTHON point elsewhere. The simulator serves from the same
# build, so with a dev build it, not weir, bounds the wall time.
set -euo pipefail
W=${WEIR:-$PWD/target/debug/weir}
PY=${MOTO_PYTHON:-$PWD/target/weir-python/s3/bin/python}
root=$PWD; work=$(mktemp -d); cd "$work"
$W sim airtable --port 18787 --rows 200000 --no-rate-limit > sim.log 2>&1 & SIM=$!
$PY "$root/tests/py/moto_server.py" < <(sleep 100000) > moto.out 2>moto.err & MOTO=$!
sleep 6
PORT=$(grep -o 'port [0-9]*' moto.out | awk '{print $2}')
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_ACCESS_KEY_ID=k AWS_SECRET_ACCESS_KEY=s AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true AWS_EC2_METADATA_DISABLED=true
$PY - <<PYEOF
import http.client
c=http.client.HTTPConnection("127.0.0.1",$PORT); c.request("PUT","/bench"); print("bucket", c.getresponse().status)
PYEOF
echo -n "patWeirSim.0123456789abcdef0123456789abcdef" > sim-token
printf '[connections.airtable]\nconnector = "airtable"\nbase_id = "appProductLaunch"\nbase_url = "http://127.0.0.1:18787"\nbearer_token = { file = "sim-token" }\nallow_loopback = true\n' > connections.toml
printf 'connection_name: airtable\nobjects:\n  - table:\n      source_table: SKU Candidates\n' > spec.yaml
for target in local s3; do
  wh=$([ $target = local ] && echo "$work/wh-local" || echo s3://bench/wh)
  /usr/bin/time -f "$target: %e s wall, %U s user, %S s sys, %M KB max RSS" $W run spec.yaml --connections connections.toml --warehouse $wh --commit-rows 50000 --json > run-$target.json 2> run-$target.err || { tail run-$target.err; }
  tail -1 run-$target.err
  grep -o '"rows_read": [0-9]*\|"inserted": [0-9]*' run-$target.json | head -2 | tr '\n' ' '; echo
done
kill $SIM $MOTO 2>/dev/null; pkill -f moto_server.py || true
