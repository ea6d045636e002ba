#!/usr/bin/env bash
# Media relay benchmark: tollgate's relay (meter/, run as testbed/cmd/relayd
# behind the NG control protocol) against rtpengine (Debian
# rtpengine-daemon, userspace forwarding: --table=-1), in one invocation,
# with the same load (testbed/cmd/rtpbench): CALLS concurrent calls (default
# "500 1000"), each sending PPS (default 50) 20 ms G.711 packets per second
# each way through the relay, WINDOW seconds measured after WARMUP.
#
#   testbed/media-bench.sh                 # both relays, 500 and 1000 calls
#   CALLS=1000 WINDOW=30 testbed/media-bench.sh
#
# Per row: packets relayed per second, relay CPU (cores, and CPU-seconds per
# million packets relayed: utime+stime of the relay process over the
# window), loss, the receivers' mean interarrival jitter (RFC 3550) and the
# part the relay added (receivers' minus the senders' pacing jitter), and the
# relay's RSS per call (VmRSS with the calls up minus before, over calls).
# The load generator runs on the same 2 cores; its CPU is not counted.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${CALLS:-"500 1000"}
PPS=${PPS:-50}
WARMUP=${WARMUP:-3}
WINDOW=${WINDOW:-20}
OUT=${OUT:-$(pwd)/testbed/results/media-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
go build -o "$OUT/relayd" ./testbed/cmd/relayd
go build -o "$OUT/rtpbench" ./testbed/cmd/rtpbench
command -v rtpengine >/dev/null || { echo "media-bench: rtpengine not installed (apt-get install rtpengine-daemon)"; exit 1; }
echo "media-bench: $(nproc) CPUs, $(rtpengine --version 2>&1 | head -1), output in $OUT"

start_relay() { # target -> pid
	case $1 in
	tollgate) "$OUT/relayd" -ng 127.0.0.1:2224 -ip 127.0.0.1 -ports 40000-49999 >"$OUT/relayd.log" 2>&1 & echo $! ;;
	rtpengine) rtpengine -f -E --log-level=3 --table=-1 --interface=127.0.0.1 --listen-ng=127.0.0.1:2223 \
		--port-min=50000 --port-max=59999 >"$OUT/rtpengine.log" 2>&1 & echo $! ;;
	esac
}
ngport() { [ "$1" = tollgate ] && echo 2224 || echo 2223; }

printf "target\tcalls\tpackets/s\tcores\tcpu_s_per_Mpkt\tloss_pct\tjitter_ms\tadded_jitter_ms\trss_kib_per_call\n" >"$OUT/results.tsv"
for calls in $CALLS; do
	for target in rtpengine tollgate; do
		pid=$(start_relay $target)
		sleep 1
		"$OUT/rtpbench" -ng 127.0.0.1:$(ngport $target) -pid "$pid" -calls "$calls" -pps "$PPS" \
			-warmup "${WARMUP}s" -window "${WINDOW}s" -label $target | tee -a "$OUT/results.tsv"
		kill "$pid"; wait "$pid" 2>/dev/null || true
		sleep 1
	done
done

echo
echo "| relay | calls | packets/s relayed | relay cores | CPU-s per million packets | loss | receiver jitter ms | added jitter ms | RSS KiB/call |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
tail -n +2 "$OUT/results.tsv" | awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s %% | %s | %s | %s |\n", $1,$2,$3,$4,$5,$6,$7,$8,$9}'
echo
awk -F'\t' 'NR>1 {c[$1" "$2]=$5} END {for (k in c) if (k ~ /^tollgate/) {split(k,a," "); r=c["rtpengine " a[2]]; if (r>0) printf "- %s calls: tollgate / rtpengine CPU per packet %.2f\n", a[2], c[k]/r}}' "$OUT/results.tsv"
