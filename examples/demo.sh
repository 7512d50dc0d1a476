#!/usr/bin/env bash
# make demo: rds-reconcile end to end on a fresh machine, without root.
# It builds the binary, starts the built-in RouterOS simulator over SSH
# (`rds-reconcile sim`), and drives a simulated NVMe host (--fabric sim:DIR):
#   1. apply examples/demo.yaml (plan, progress, summary)
#   2. plan again: nothing to do
#   3. an orphan controller (a volume dropped from the state) is disconnected
#   4. a timeout changed in the state is changed in place
#   5. status
# Environment: DEMO_DIR (default /tmp/rds-demo), DEMO_PORT (default 2222,
# the port examples/demo.yaml names), RDS_RECONCILE (a binary to use
# instead of building one).
set -euo pipefail

cd "$(dirname "$0")/.."
DEMO=${DEMO_DIR:-/tmp/rds-demo}
PORT=${DEMO_PORT:-2222}
mkdir -p "$DEMO"
# Start from a clean simulated RDS and host (only what this script creates).
rm -rf "$DEMO/rds" "$DEMO/host" "$DEMO"/*.yaml "$DEMO/sim.log"

BIN=${RDS_RECONCILE:-}
if [ -z "$BIN" ]; then
	echo "building rds-reconcile..."
	go build -o "$DEMO/rds-reconcile" ./cmd/rds-reconcile
	BIN=$DEMO/rds-reconcile
fi

step() { printf '\n\033[1m== %s\033[0m\n\n' "$*"; }

"$BIN" sim --listen "127.0.0.1:$PORT" --dir "$DEMO/rds" >"$DEMO/sim.log" 2>&1 &
SIM=$!
trap 'kill "$SIM" 2>/dev/null || true; wait "$SIM" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
	[ -s "$DEMO/rds/known_hosts" ] && break
	if ! kill -0 "$SIM" 2>/dev/null; then
		echo "the simulator did not start:" >&2
		cat "$DEMO/sim.log" >&2
		exit 1
	fi
	sleep 0.1
done
[ -s "$DEMO/rds/known_hosts" ] || { echo "the simulator did not start in 10s" >&2; cat "$DEMO/sim.log" >&2; exit 1; }

# examples/demo.yaml names its SSH key and known_hosts relative to itself
# (examples/demo/); point them at the files the simulator just wrote.
sed -e "s#privateKeyFile: .*#privateKeyFile: $DEMO/rds/client_key#" \
	-e "s#knownHostsFile: .*#knownHostsFile: $DEMO/rds/known_hosts#" \
	-e "s#address: 127.0.0.1:2222#address: 127.0.0.1:$PORT#" \
	examples/demo.yaml >"$DEMO/demo.yaml"

R=("$BIN" --fabric "sim:$DEMO/host" --host node-a --log-level warn)

step "1. apply examples/demo.yaml against the simulator"
"${R[@]}" apply -f "$DEMO/demo.yaml" --auto-approve

step "2. plan again right away: nothing to do (exit code 0 with --detailed-exitcode)"
"${R[@]}" plan -f "$DEMO/demo.yaml" --detailed-exitcode

step "3. an orphan: demo-tmp is connected, then dropped from the state"
cp "$DEMO/demo.yaml" "$DEMO/with-tmp.yaml"
echo "  - {name: demo-tmp, size: 256Mi, attachments: [node-a]}" >>"$DEMO/with-tmp.yaml"
"${R[@]}" apply -f "$DEMO/with-tmp.yaml" --auto-approve >/dev/null
echo "(demo-tmp applied and connected; now back to examples/demo.yaml)"
echo
"${R[@]}" apply -f "$DEMO/demo.yaml" --auto-approve

step "4. ctrlLossTmo of demo-db 600 -> 1200: changed in place, no reconnect"
sed -i 's/ctrlLossTmo: 600/ctrlLossTmo: 1200/' "$DEMO/demo.yaml"
"${R[@]}" apply -f "$DEMO/demo.yaml" --auto-approve

step "5. status"
"${R[@]}" status -f "$DEMO/demo.yaml"

echo
echo "Done. The simulated RDS state is in $DEMO/rds/state.json, the simulated host in $DEMO/host/fabric.json."
