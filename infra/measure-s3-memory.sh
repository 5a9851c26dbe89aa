#!/usr/bin/env bash
# The memory figure of infra/README.md: peak RSS (GNU time's maximum resident set size) of the
# release binary exporting the simulated org to SeaweedFS, started as tests/it/support/s3.rs starts it,
# a full run and a `--since latest` run, per format.
#   cargo build --release && cargo test --test it export_s3::   # builds the binary, installs weed and moto
#   FORMATS=tar-gz infra/measure-s3-memory.sh 30000        # needs /usr/bin/time (Debian: time)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/target/release/flowvault
WEED=$ROOT/target/test-tools/seaweedfs-4.48/bin/weed
PY=$ROOT/target/test-tools/moto-5.2.5/bin/python   # for boto3, to create the bucket
N=${1:-10000}
D=$(mktemp -d)
cat > $D/keys.json <<K
{"identities":[{"name":"m","credentials":[{"accessKey":"AKIAMEASURE","secretKey":"measure-secret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
K
mkdir -p $D/store
base=$((20000 + RANDOM % 20000))
args=""; i=0
for n in master.port master.port.grpc volume.port volume.port.grpc filer.port filer.port.grpc s3.port s3.port.grpc admin.port admin.port.grpc webdav.port; do args="$args -$n=$((base+i))"; i=$((i+1)); done
S3PORT=$((base+6))
(cd $D && $WEED mini -dir=$D/store -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.config=$D/keys.json -s3.domainName=localhost -admin.ui=false -webdav=false -master.telemetry=false -s3.port.iceberg=0 -s3.port.lance=0 $args >$D/weed.log 2>&1) &
WPID=$!
SPORT=$((base+20))
$BIN sim --port $SPORT --flows $N >$D/sim.log 2>&1 &
SPID=$!
trap 'pkill -P $WPID 2>/dev/null; kill $WPID $SPID 2>/dev/null || true' EXIT
for t in $(seq 1 120); do
  $PY -c "
import boto3,sys
c=boto3.client('s3',endpoint_url='http://127.0.0.1:$S3PORT',aws_access_key_id='AKIAMEASURE',aws_secret_access_key='measure-secret',region_name='us-east-1')
c.create_bucket(Bucket='measure')" 2>/dev/null && break; sleep 1; done
export AWS_ACCESS_KEY_ID=AKIAMEASURE AWS_SECRET_ACCESS_KEY=measure-secret AWS_REGION=us-east-1 AWS_ENDPOINT_URL=http://127.0.0.1:$S3PORT FLOWVAULT_S3_FORCE_PATH_STYLE=true
export GENESYSCLOUD_OAUTHCLIENT_ID=flowvault-sim GENESYSCLOUD_OAUTHCLIENT_SECRET=flowvault-sim-secret FLOWVAULT_API_URL=http://127.0.0.1:$SPORT FLOWVAULT_ALLOW_INSECURE_HTTP=true
for fmt in ${FORMATS:-tar-gz objects}; do
  for mode in full since; do
    extra=""; [ $mode = since ] && extra="--since latest"
    /usr/bin/time -f "$fmt $mode: maxrss %M KiB, wall %e s, exit %x" $BIN export --to s3://measure/$fmt --format $fmt --rate-limit off --quiet $extra >/dev/null 2>$D/err-$fmt-$mode.log || true
    tail -1 $D/err-$fmt-$mode.log
  done
done
