#!/usr/bin/env bash
# Usage events benchmark (issue 11): what publishing the events to NATS
# JetStream costs and how fast it is. SIPp uac (the tenant's PBX,
# 127.0.0.10) -> tollgate (127.0.0.1, UDP) -> SIPp uas (the carrier,
# 127.0.0.2), SIPp's built-in scenarios, calls held CALL_MS (default 1000
# ms); every call makes three events: call.started, call.answered,
# call.ended. tollgate runs the bare bench plan of testbed/bench.sh (no
# caps), media.mode off, Badger with fsync (the defaults), log level warn,
# admin API on 127.0.0.1:PORT_BASE+3 (its /metrics), sip.flood's
# known-source bucket raised out of reach (the default 2,000 requests/s
# blocks the PBX above ~660 calls/s: 3 requests per call). One invocation runs
# three phases (PHASES, default "latency sweep outage"):
#
#   testbed/events-bench.sh                        # all three, ~8 min (make bench runs it)
#   PHASES=latency testbed/events-bench.sh         # one phase
#   RATES="800 1000 1200" STEP_SECONDS=8 PHASES=sweep testbed/events-bench.sh
#
# latency: RATE (1000) calls/s for LAT_SECONDS (40) with the embedded
#   server (no nats.url; nats.listen 127.0.0.1:PORT_BASE+5). Two
#   subscribers (testbed/cmd/evlat) run meanwhile: a core subscription on
#   tollgate.events.> and a JetStream ordered consumer (DeliverNew) on the
#   stream. Each records, per call.ended, its arrival time minus the
#   event's "time" (the instant the call ended in the engine; one clock),
#   and counts events by type and duplicate ids. Reported: events/s
#   (evlat: over the span from first to last arrival, and the median of
#   its per-second counts; /metrics: the delta of the publish counter over
#   the SIPp run), call end -> event latency p50/p90/p99/max for both
#   subscribers (core: commit + outbox read + publish; js: + JetStream's
#   store and the consumer's delivery), and the gateway's CPU per call.
# sweep: max clean call rate, publishing on (embedded server, no
#   subscriber) and off (nats.enabled: false: no server, no publisher,
#   events stay in the outbox). A fresh gateway per mode; SIPp steps
#   through RATES ("800 1000 1500 2000 2500 3000 3500 4000") with
#   STEP_SECONDS (12) of calls each and stops at the first step that is
#   not clean: more than 0.1 % of the calls attempted failed, or the rate
#   SIPp achieved while placing was below 97 % of the target. The highest
#   clean rate of each mode, their ratio, and the CPU per call
#   (utime+stime of the gateway process from /proc over the step, the
#   embedded NATS server included since it runs in the process, over the
#   successful calls) at every step; the 1,000 calls/s step's figure is
#   the stable one on 2 cores.
# outage: an external nats-server (testbed/cmd/natsd, the go.mod version,
#   JetStream, on 127.0.0.1:PORT_BASE+6, store in the phase's directory),
#   the gateway with nats.url pointing at it. SIPp places OUTAGE_RATE (500)
#   calls/s for PRE_OUTAGE_SECONDS (10) + OUTAGE_SECONDS (60); after
#   PRE_OUTAGE_SECONDS the server is stopped (SIGTERM, or OUTAGE_SIGNAL),
#   OUTAGE_SECONDS later started again on the same store, as SIPp places
#   its last calls. /metrics is read every SAMPLE_INTERVAL (0.2 s):
#   tollgate_outbox_depth and the publish counter. Reported: the depth at the end of the outage,
#   the time from the restart to an empty outbox, and the drain rate:
#   events per second from the last sample before the depth first fell
#   after the restart to the first sample at 0 (and the best 1 s); the
#   JetStream consumer's arrivals from the restart on; the calls SIPp completed
#   during the outage (admission carries on); what the subscribers got.
#
# Environment (defaults in brackets):
#   PHASES [latency sweep outage]   RATE [1000]   LAT_SECONDS [40]
#   CALL_MS [1000]: SIPp -d         RATES, STEP_SECONDS [12]
#   SWEEP_MODES [on off]: the sweep's publishing modes, in order
#   BUSY_RETRIES [0], BUSY_CORES [0.2]: a sweep step that is not clean
#     while other processes used more than BUSY_CORES cores is run again
#     (after 15 s), up to BUSY_RETRIES times in a mode (both rows stay in
#     sweep.tsv; the highest clean rate counts) — for a shared machine
#   OUTAGE_RATE [500]  PRE_OUTAGE_SECONDS [10]  OUTAGE_SECONDS [60]
#   OUTAGE_SIGNAL [TERM]: how the external server is stopped (KILL: crash)
#   DRAIN_TIMEOUT [300]: seconds to wait for the outbox to empty
#   SAMPLE_INTERVAL [0.2]: seconds between the outage's /metrics reads
#     (each read costs the gateway an outbox depth scan)
#   PROFILE [0]: 1 = debug.listen on PORT_BASE+4 and a 10 s CPU profile of
#     the gateway in the middle of the latency run and from 1 s after the
#     outage's restart (cpu.pprof, profile.txt: pprof -top and the CPU by
#     component, each sample given to the outermost known frame of its
#     stack: the goroutine's owner); the profiled runs' figures include
#     the profiler's overhead
#   PUBLISHED_METRIC [tollgate_events_published_total]: the publish
#     counter (if /metrics lacks it, the first tollgate_*publish*_total)
#   PORT_BASE [35060]: gateway UDP PORT_BASE, uac +1, uas +2, admin API
#     TCP +3, pprof +4 (PROFILE=1), embedded NATS +5, external NATS +6,
#     SIPp media +940/+1040
#   SIPP_BUFF [8388608]  OUT [testbed/results/events-<time>]: an absolute path
#
# Output: $OUT/summary.md (the tables), $OUT/sweep.tsv, and per phase a
# directory with the config, the gateway's log, SIPp's stats, evlat's JSON
# (core.json, js.json) and per-second arrivals (core-series.tsv), and
# (outage) depth.tsv: unix time, outbox depth, publish counter.
#
# Not run by CI: it wants an otherwise idle machine (it checks the load
# average and reports the CPU other processes used during each step).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

PHASES=${PHASES:-"latency sweep outage"}
RATE=${RATE:-1000}
LAT_SECONDS=${LAT_SECONDS:-40}
CALL_MS=${CALL_MS:-1000}
RATES=${RATES:-"800 1000 1500 2000 2500 3000 3500 4000"}
STEP_SECONDS=${STEP_SECONDS:-12}
SWEEP_MODES=${SWEEP_MODES:-"on off"}
OUTAGE_RATE=${OUTAGE_RATE:-500}
PRE_OUTAGE_SECONDS=${PRE_OUTAGE_SECONDS:-10}
OUTAGE_SECONDS=${OUTAGE_SECONDS:-60}
OUTAGE_SIGNAL=${OUTAGE_SIGNAL:-TERM}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-300}
PROFILE=${PROFILE:-0}
SAMPLE_INTERVAL=${SAMPLE_INTERVAL:-0.2}
PUBLISHED_METRIC=${PUBLISHED_METRIC:-tollgate_events_published_total}
PORT_BASE=${PORT_BASE:-35060}
BUSY_RETRIES=${BUSY_RETRIES:-0}
BUSY_CORES=${BUSY_CORES:-0.2}
SIPP_BUFF=${SIPP_BUFF:-8388608}
GW_PORT=$PORT_BASE
UAC_PORT=$((PORT_BASE + 1))
UAS_PORT=$((PORT_BASE + 2))
API_PORT=$((PORT_BASE + 3))
DEBUG_PORT=$((PORT_BASE + 4))
NATS_PORT=$((PORT_BASE + 5))
EXT_NATS_PORT=$((PORT_BASE + 6))
UAS_MEDIA_PORT=$((PORT_BASE + 940))
UAC_MEDIA_PORT=$((PORT_BASE + 1040))
CLK_TCK=$(getconf CLK_TCK)
OUT=${OUT:-$ROOT/testbed/results/events-$(date -u +%Y%m%dT%H%M%SZ)}
case $OUT in
/*) ;;
*)
	echo "events-bench: OUT must be an absolute path, got $OUT" >&2
	exit 2
	;;
esac

command -v sipp >/dev/null || { echo "events-bench: sipp not found (Debian/Ubuntu package sip-tester)" >&2; exit 1; }
command -v jq >/dev/null || { echo "events-bench: jq not found" >&2; exit 1; }
command -v curl >/dev/null || { echo "events-bench: curl not found" >&2; exit 1; }
mkdir -p "$OUT"

# shellcheck disable=SC2034 # NAME is read by lib.sh
NAME=events-bench
# shellcheck source=testbed/lib.sh disable=SC1091
. "$ROOT/testbed/lib.sh"

for p in "127.0.0.1 $GW_PORT" "127.0.0.2 $UAS_PORT" "127.0.0.10 $UAC_PORT" \
	"127.0.0.2 $UAS_MEDIA_PORT" "127.0.0.10 $UAC_MEDIA_PORT"; do
	# shellcheck disable=SC2086
	if udp_listening $p; then
		echo "events-bench: UDP ${p// /:} already in use; set PORT_BASE" >&2
		exit 1
	fi
done
for p in "$API_PORT" "$DEBUG_PORT" "$NATS_PORT" "$EXT_NATS_PORT"; do
	if tcp_listening 127.0.0.1 "$p"; then
		echo "events-bench: TCP 127.0.0.1:$p already in use; set PORT_BASE" >&2
		exit 1
	fi
done

echo "events-bench: building bin/tollgate, evlat, natsd"
go build -o bin/tollgate ./cmd/tollgate
go build -o "$OUT/evlat" ./testbed/cmd/evlat
go build -o "$OUT/natsd" ./testbed/cmd/natsd
REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')
echo "events-bench: tollgate $REV; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg); phases: $PHASES; output in $OUT"

# wait_tcp PORT SECONDS: until something listens on 127.0.0.1:PORT.
wait_tcp() {
	local _
	for _ in $(seq 1 $(($2 * 10))); do
		if tcp_listening 127.0.0.1 "$1"; then return 0; fi
		sleep 0.1
	done
	return 1
}

# write_config FILE DATA_DIR NATS_BODY: the bench config; NATS_BODY is the
# nats section's body (indented two spaces).
write_config() {
	cat >"$1" <<EOF
# written by testbed/events-bench.sh
log:
  level: warn
  format: json
sip:
  listen:
    - transport: udp
      address: 127.0.0.1:$GW_PORT
  advertise: 127.0.0.1
  timer_c: 10s
  shutdown_grace: 0s
  # Out of reach: the PBX sends 3 requests per call (INVITE, ACK, BYE),
  # 3,000/s at 1,000 calls/s, over the default known-source bucket
  # (2,000/s, burst 4,000), which would block it for 60 s.
  flood:
    rate: 1000000
    burst: 10000000
media:
  mode: "off"
carriers:
  - name: carrier
    address: 127.0.0.2:$UAS_PORT
    transport: udp
    sources: [127.0.0.2/32]
plans:
  - name: bench
    limits:
      max_parallel_calls: -1
tenants:
  - name: bench
    plan: bench
    carrier: carrier
    sources: [127.0.0.10/32]
nats:
$3
store:
  data_dir: "$2"
api:
  listen: 127.0.0.1:$API_PORT
EOF
	if [ "$PROFILE" = 1 ]; then printf 'debug:\n  listen: 127.0.0.1:%s\n' "$DEBUG_PORT" >>"$1"; fi
}

# profile_start DIR DELAY: in the background, after DELAY seconds, a 10 s
# CPU profile of the gateway into DIR/cpu.pprof; sets PROF_PID.
profile_start() {
	PROF_PID=
	[ "$PROFILE" = 1 ] || return 0
	(sleep "$2" && curl -fsS --max-time 30 -o "$1/cpu.pprof" \
		"http://127.0.0.1:$DEBUG_PORT/debug/pprof/profile?seconds=10" 2>"$1/cpu.pprof.err") &
	PROF_PID=$!
	PIDS+=("$PROF_PID")
}

# profile_finish DIR: wait for the profile, write DIR/profile.txt.
profile_finish() {
	[ -n "$PROF_PID" ] || return 0
	wait "$PROF_PID" 2>/dev/null || true
	forget_pid "$PROF_PID"
	if [ ! -s "$1/cpu.pprof" ]; then
		echo "events-bench: no CPU profile ($(cat "$1/cpu.pprof.err" 2>/dev/null))" >&2
		return 0
	fi
	profile_report "$1" >"$1/profile.txt"
	echo "events-bench: CPU profile in $1/cpu.pprof, report in $1/profile.txt"
}

# profile_report DIR: the report of DIR/cpu.pprof.
profile_report() {
	{
		echo "# CPU profile of the gateway, 10 s: $1/cpu.pprof"
		echo
		echo "## By component (each sample to the outermost known frame of its stack)"
		echo
		go tool pprof -traces bin/tollgate "$1/cpu.pprof" 2>/dev/null | awk '
			function ms(v) {
				if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
				if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
				if (v ~ /ns$/) { sub(/ns$/, "", v); return v / 1e6 }
				if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000 }
				return v + 0
			}
			function comp(f) {
				if (f ~ /^runtime\.(gcBgMarkWorker|bgsweep|bgscavenge)/) return "GC, background workers"
				if (f ~ /nats-io\/nats-server/) return "embedded nats-server (JetStream)"
				if (f ~ /tollgate\/bus/) return "bus publisher (outbox reads, encode, publish, acks)"
				if (f ~ /nats-io\/nats\.go/) return "nats.go client (connection I/O, PubAcks)"
				if (f ~ /tollgate\/store/) return "store committer (Badger writes)"
				if (f ~ /dgraph-io\/(badger|ristretto)/) return "Badger background (flush, compaction)"
				if (f ~ /(emiago\/sipgo|tollgate\/sip|tollgate\/admission|tollgate\/control|tollgate\/meter)/) return "SIP, admission, control"
				if (f ~ /(tollgate\/api|prometheus|net\/http)/) return "admin API (/metrics scrapes)"
				return ""
			}
			function flush(   i, c) {
				if (n == 0) return
				c = ""
				for (i = n; i >= 1 && c == ""; i--) c = comp(fr[i])
				if (c == "") c = "other (runtime: scheduler, timers, netpoll)"
				by[c] += val; total += val; n = 0
			}
			/^-+\+-+$/ { flush(); inside = 1; next }
			!inside { next }
			# pprof labels of the sample (nats-server sets some), before its value
			n == 0 && $1 ~ /:$/ { next }
			{
				if (n == 0 && $1 ~ /^[0-9.]+(ns|us|ms|s)$/) { val = ms($1); fr[++n] = $2; next }
				if (NF >= 1) fr[++n] = $NF
			}
			END {
				flush()
				if (total == 0) { print "(no samples)"; exit }
				print "| component | CPU ms in 10 s | share |"
				print "|---|---:|---:|"
				for (c in by) printf "| %s | %.0f | %.1f %% |\n", c, by[c], 100 * by[c] / total | "sort -t\"|\" -k3 -rn"
				close("sort -t\"|\" -k3 -rn")
				printf "| total | %.0f | 100 %% |\n", total
			}'
		echo
		echo "## go tool pprof -top (flat)"
		echo
		go tool pprof -top -nodecount=30 bin/tollgate "$1/cpu.pprof" 2>&1
		echo
		echo "## go tool pprof -top -cum"
		echo
		go tool pprof -top -cum -nodecount=40 bin/tollgate "$1/cpu.pprof" 2>&1
	}
}

# start_gateway DIR NATS_BODY: a fresh gateway (new store in DIR/data);
# sets GW_PID.
start_gateway() {
	local dir=$1
	mkdir -p "$dir"
	rm -rf "$dir/data"
	write_config "$dir/tollgate.yaml" "$dir/data" "$2"
	bin/tollgate serve -c "$dir/tollgate.yaml" 2>"$dir/tollgate.log" &
	GW_PID=$!
	PIDS+=("$GW_PID")
	wait_listening 127.0.0.1 "$GW_PORT"
	wait_tcp "$API_PORT" 10 || { echo "events-bench: no admin API on 127.0.0.1:$API_PORT; see $dir/tollgate.log" >&2; exit 1; }
}

# start_uas DIR: SIPp's uas (the carrier); sets UAS_PID.
start_uas() {
	sipp -sn uas -i 127.0.0.2 -p "$UAS_PORT" -mi 127.0.0.2 -mp "$UAS_MEDIA_PORT" \
		-nostdin -buff_size "$SIPP_BUFF" -max_recv_loops 5000 -max_sched_loops 5000 \
		>"$1/uas.screen" 2>&1 &
	UAS_PID=$!
	PIDS+=("$UAS_PID")
	wait_listening 127.0.0.2 "$UAS_PORT"
}

# uac_cmd STF RATE CALLS: the SIPp uac command line (printed into the files).
uac_args() {
	local stf=$1 rate=$2 calls=$3 secs
	secs=$((calls / rate))
	echo -sn uac -i 127.0.0.10 -p "$UAC_PORT" -mi 127.0.0.10 -mp "$UAC_MEDIA_PORT" -s 15550001 \
		"127.0.0.1:$GW_PORT" -r "$rate" -m "$calls" -l "$((3 * rate * (CALL_MS / 1000 + 1)))" -d "$CALL_MS" \
		-nostdin -buff_size "$SIPP_BUFF" -max_recv_loops 5000 -max_sched_loops 5000 \
		-recv_timeout 10000 -timeout "$((secs + CALL_MS / 1000 + 20))s" \
		-trace_stat -stf "$stf" -fd 1
}

# uac_stats STF CALLS: "attempted successful failed achieved_cps" from
# SIPp's stats (the achieved rate: calls placed over the time since the
# start, at the last row while calls were still being placed).
uac_stats() {
	awk -F';' '
		function epoch(field,   p) { split(field, p, "\t"); return p[3] }
		NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
		NR == 2 { t0 = epoch($col["StartTime"]) }
		{
			last = $0
			placed = $col["OutgoingCall(C)"]
			if (placed > 0 && placed < want) cps = placed / (epoch($col["CurrentTime"]) - t0)
		}
		END {
			split(last, v, ";")
			a = v[col["OutgoingCall(C)"]]
			if (cps == "") cps = a / (epoch(v[col["CurrentTime"]]) - t0)
			printf "%d %d %d %.0f\n", a, v[col["SuccessfulCall(C)"]], a - v[col["SuccessfulCall(C)"]], cps
		}' want="$2" "$1"
}

# scrape FILE: /metrics into FILE (empty on failure).
scrape() {
	curl -fsS --max-time 5 -o "$1" "http://127.0.0.1:$API_PORT/metrics" 2>/dev/null || : >"$1"
}

# metric FILE NAME: the sum of NAME's series in a scrape ("" if absent).
metric() {
	awk -v n="$2" '($1 == n || index($1, n "{") == 1) { s += $NF; seen = 1 } END { if (seen) printf "%.0f\n", s }' "$1"
}

# published_name FILE: the publish counter's name in a scrape.
published_name() {
	if grep -q "^${PUBLISHED_METRIC}[ {]" "$1"; then
		echo "$PUBLISHED_METRIC"
	else
		grep -o '^tollgate_[a-z_]*publish[a-z_]*_total' "$1" | grep -v -e error -e fail -e dup -e skip | head -1 || true
	fi
}

# wait_depth_zero SECONDS: until /metrics reports an empty outbox (0 if it
# did, 1 on timeout).
wait_depth_zero() {
	local _ d
	for _ in $(seq 1 $(($1 * 5))); do
		d=$(curl -fsS --max-time 2 "http://127.0.0.1:$API_PORT/metrics" 2>/dev/null | awk '$1 == "tollgate_outbox_depth" { print $2 }')
		if [ "${d:-x}" = 0 ]; then return 0; fi
		sleep 0.2
	done
	return 1
}

# start_evlat DIR LABEL URL [-js]: a subscriber; sets EVLAT_PID.
start_evlat() {
	local dir=$1 label=$2 url=$3
	shift 3
	rm -f "$dir/$label.ready"
	"$OUT/evlat" -url "$url" -label "$label" -ready "$dir/$label.ready" -series "$dir/$label-series.tsv" "$@" \
		>"$dir/$label.json" 2>"$dir/$label.err" &
	EVLAT_PID=$!
	PIDS+=("$EVLAT_PID")
	local _
	for _ in $(seq 1 300); do
		[ -e "$dir/$label.ready" ] && return 0
		kill -0 "$EVLAT_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "events-bench: evlat $label did not subscribe; see $dir/$label.err" >&2
	exit 1
}

# series_median FILE: the median per-second event count, the first and
# last two seconds left out (ramps).
series_median() {
	awk -F'\t' 'NR > 1 { v[++n] = $2 } END {
		m = 0
		for (i = 3; i <= n - 2; i++) w[++m] = v[i]
		if (m == 0) { print 0; exit }
		# insertion sort: a few dozen values
		for (i = 2; i <= m; i++) { x = w[i]; for (j = i - 1; j >= 1 && w[j] > x; j--) w[j + 1] = w[j]; w[j + 1] = x }
		print w[int((m + 1) / 2)]
	}' "$1"
}

# delta BEFORE AFTER NAME: the change of a counter between two scrapes
# ("-" if absent).
delta() {
	local a b
	a=$(metric "$1" "$3")
	b=$(metric "$2" "$3")
	if [ -z "$b" ]; then echo -; else echo $((b - ${a:-0})); fi
}

# puback_line BEFORE AFTER: the mean PubAck latency between two scrapes
# and the share of PubAcks under 10 and 50 ms (tollgate_events_puback_seconds).
puback_line() {
	awk '
		FNR == 1 { f++ }
		/^tollgate_events_puback_seconds_sum / { s[f] = $2 }
		/^tollgate_events_puback_seconds_count / { c[f] = $2 }
		/^tollgate_events_puback_seconds_bucket\{le="0.01"\}/ { b10[f] = $2 }
		/^tollgate_events_puback_seconds_bucket\{le="0.05"\}/ { b50[f] = $2 }
		END {
			n = c[2] - c[1]
			if (n <= 0) exit
			printf "PubAck (publish to JetStream ack): mean %.2f ms, %.1f %% under 10 ms, %.1f %% under 50 ms.", 1000 * (s[2] - s[1]) / n, 100 * (b10[2] - b10[1]) / n, 100 * (b50[2] - b50[1]) / n
		}' "$1" "$2"
}

SUMMARY=$OUT/summary.md
: >"$SUMMARY"

# --- latency: events/s and call end -> subscriber at RATE --------------------
phase_latency() {
	local dir=$OUT/latency calls=$((RATE * LAT_SECONDS)) core_pid js_pid t0 t1 w0 w1 rc pname p0 p1
	mkdir -p "$dir"
	echo "events-bench: latency: $calls calls at $RATE/s (${CALL_MS} ms each), embedded server on 127.0.0.1:$NATS_PORT; files in $dir"
	start_gateway "$dir" "  listen: 127.0.0.1:$NATS_PORT"
	wait_tcp "$NATS_PORT" 15 || { echo "events-bench: the gateway does not listen for NATS clients on 127.0.0.1:$NATS_PORT (is the embedded server wired into serve?); see $dir/tollgate.log" >&2; exit 1; }
	start_evlat "$dir" core "nats://127.0.0.1:$NATS_PORT"
	core_pid=$EVLAT_PID
	start_evlat "$dir" js "nats://127.0.0.1:$NATS_PORT" -js
	js_pid=$EVLAT_PID
	start_uas "$dir"
	sleep 1
	scrape "$dir/metrics-before.txt"
	rm -f "$dir/.others"
	others_ticks "$dir/.others" >/dev/null
	t0=$(cpu_ticks "$GW_PID")
	w0=$(now)
	# shellcheck disable=SC2046
	echo "sipp $(uac_args "$dir/uac.csv" "$RATE" "$calls")" >"$dir/uac.cmd"
	profile_start "$dir" $((LAT_SECONDS / 2 - 5 > 0 ? LAT_SECONDS / 2 - 5 : 0))
	set +e
	# shellcheck disable=SC2046
	sipp $(uac_args "$dir/uac.csv" "$RATE" "$calls") >"$dir/uac.screen" 2>&1
	rc=$?
	set -e
	w1=$(now)
	t1=$(cpu_ticks "$GW_PID")
	local others
	others=$(others_ticks "$dir/.others")
	wait_depth_zero 30 || echo "events-bench: latency: the outbox did not empty within 30 s" >&2
	scrape "$dir/metrics-after.txt"
	profile_finish "$dir"
	sleep 0.5
	stop_pid "$core_pid"
	stop_pid "$js_pid"
	stop_pid "$UAS_PID"
	stop_pid "$GW_PID"
	read -r LAT_ATT LAT_OK LAT_FAIL LAT_CPS <<<"$(uac_stats "$dir/uac.csv" "$calls")"
	pname=$(published_name "$dir/metrics-after.txt")
	LAT_PUB_RATE=-
	if [ -n "$pname" ]; then
		p0=$(metric "$dir/metrics-before.txt" "$pname")
		p1=$(metric "$dir/metrics-after.txt" "$pname")
		LAT_PUB_TOTAL=$((${p1:-0} - ${p0:-0}))
		LAT_PUB_RATE=$(awk -v n="$LAT_PUB_TOTAL" -v a="$w0" -v b="$w1" 'BEGIN { printf "%.0f", n / (b - a) }')
	fi
	local cpu_ms other_cores
	cpu_ms=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" -v s="$LAT_OK" 'BEGIN { printf "%.3f", (s > 0 ? 1000 * (b - a) / hz / s : 0) }')
	other_cores=$(awk -v t="$others" -v hz="$CLK_TCK" -v a="$w0" -v b="$w1" 'BEGIN { printf "%.2f", t / hz / (b - a) }')
	{
		echo
		echo "## Usage events: latency and events/s at $RATE calls/s (embedded server)"
		echo
		echo "tollgate $REV, $(date -u +%FT%TZ), $(nproc) CPUs. Command: \`$(sed 's/-stf [^ ]*/-stf uac.csv/' "$dir/uac.cmd")\`"
		echo
		echo "SIPp: $LAT_ATT calls attempted, $LAT_OK successful, $LAT_FAIL failed, $LAT_CPS calls/s achieved (sipp exit $rc); gateway CPU $cpu_ms ms/call (subscribers running); other processes $other_cores cores."
		echo
		echo "| subscriber | events | by type (started / answered / ended) | events/s (span) | events/s (median second) | duplicate ids | call.ended latency p50 | p90 | p99 | p99.9 | max (ms) |"
		echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
		local l
		for l in core js; do
			jq -r --arg med "$(series_median "$dir/$l-series.tsv")" --arg name "$([ $l = core ] && echo 'core subscription tollgate.events.>' || echo 'JetStream ordered consumer')" \
				'"| \($name) | \(.events) | \(.by_type["call.started"] // 0) / \(.by_type["call.answered"] // 0) / \(.by_type["call.ended"] // 0) | \(.events_per_s | round) | \($med) | \(.duplicates) | \(.latency_ms.p50) | \(.latency_ms.p90) | \(.latency_ms.p99) | \(.latency_ms.p999) | \(.latency_ms.max) |"' "$dir/$l.json"
		done
		echo
		if [ -n "$pname" ]; then
			echo "/metrics \`$pname\`: $LAT_PUB_TOTAL events during the SIPp run = $LAT_PUB_RATE events/s (3 per call: $((3 * LAT_OK)) expected). $(puback_line "$dir/metrics-before.txt" "$dir/metrics-after.txt")"
		else
			echo "/metrics has no publish counter ($PUBLISHED_METRIC)."
		fi
	} | tee -a "$SUMMARY"
	RES_LAT="$(jq -r '"\(.latency_ms.p50) / \(.latency_ms.p99)"' "$dir/core.json") ms (core), $(jq -r '"\(.latency_ms.p50) / \(.latency_ms.p99)"' "$dir/js.json") ms (JetStream consumer)"
	RES_EVS="$(series_median "$dir/core-series.tsv") events/s (median second, evlat), /metrics $LAT_PUB_RATE events/s, at $LAT_CPS calls/s"
	sleep 2
}

# --- sweep: max clean call rate, publishing on and off ------------------------
SWEEP=$OUT/sweep.tsv
sweep_mode() {
	local mode=$1 dir=$OUT/sweep-$1 body rate calls stf t0 t1 w0 w1 rc att ok fail cps others depth pname p0 p1 pub
	mkdir -p "$dir"
	if [ "$mode" = on ]; then body="  listen: 127.0.0.1:$NATS_PORT"; else body="  enabled: false"; fi
	start_gateway "$dir" "$body"
	if [ "$mode" = on ]; then
		wait_tcp "$NATS_PORT" 15 || { echo "events-bench: no embedded NATS on 127.0.0.1:$NATS_PORT; see $dir/tollgate.log" >&2; exit 1; }
	fi
	start_uas "$dir"
	echo "events-bench: sweep, publishing $mode: rates $RATES, ${STEP_SECONDS}s each; files in $dir"
	sleep 1
	local tries=0 i=0 rates
	read -r -a rates <<<"$RATES"
	while [ "$i" -lt "${#rates[@]}" ]; do
		rate=${rates[$i]}
		calls=$((rate * STEP_SECONDS))
		stf=$dir/uac-$rate.csv
		rm -f "$stf" "$dir/.others"
		kill -0 "$GW_PID" 2>/dev/null || { echo "events-bench: the gateway died; see $dir" >&2; exit 1; }
		scrape "$dir/metrics-$rate-before.txt"
		others_ticks "$dir/.others" >/dev/null
		t0=$(cpu_ticks "$GW_PID")
		w0=$(now)
		set +e
		# shellcheck disable=SC2046
		sipp $(uac_args "$stf" "$rate" "$calls") >"$dir/uac-$rate.screen" 2>&1
		rc=$?
		set -e
		w1=$(now)
		t1=$(cpu_ticks "$GW_PID")
		others=$(others_ticks "$dir/.others")
		scrape "$dir/metrics-$rate-after.txt"
		if [ ! -s "$stf" ]; then
			echo "events-bench: rate $rate: no SIPp stats (exit $rc); see $dir/uac-$rate.screen" >&2
			break
		fi
		read -r att ok fail cps <<<"$(uac_stats "$stf" "$calls")"
		depth=$(metric "$dir/metrics-$rate-after.txt" tollgate_outbox_depth)
		pname=$(published_name "$dir/metrics-$rate-after.txt")
		pub=-
		if [ -n "$pname" ]; then
			p0=$(metric "$dir/metrics-$rate-before.txt" "$pname")
			p1=$(metric "$dir/metrics-$rate-after.txt" "$pname")
			pub=$((${p1:-0} - ${p0:-0}))
		fi
		awk -v mode="$mode" -v rate="$rate" -v a="$att" -v s="$ok" -v f="$fail" -v cps="$cps" \
			-v t0="$t0" -v t1="$t1" -v hz="$CLK_TCK" -v w0="$w0" -v w1="$w1" -v o="$others" \
			-v depth="${depth:--}" -v pub="$pub" -v rc="$rc" 'BEGIN {
			cpu = (t1 - t0) / hz
			pct = a > 0 ? 100 * f / a : 100
			clean = (pct <= 0.1 && cps >= 0.97 * rate) ? "yes" : "no"
			printf "%s\t%d\t%d\t%d\t%d\t%.3f\t%d\t%.2f\t%.3f\t%.2f\t%s\t%s\t%d\t%s\n", mode, rate, a, s, f, pct, cps, cpu,
				(s > 0 ? 1000 * cpu / s : 0), o / hz / (w1 - w0), depth, pub, rc, clean
		}' >>"$SWEEP"
		tail -1 "$SWEEP" | awk -F'\t' '{ printf "events-bench: publishing %s, %5d calls/s: %d attempted, %d failed (%.3f %%), %d calls/s achieved, gateway CPU %.3f ms/call, other processes %.2f cores, outbox %s, published %s, clean: %s\n", $1, $2, $3, $5, $6, $7, $9, $10, $11, $12, $14 }'
		if [ "$(tail -1 "$SWEEP" | cut -f14)" != yes ]; then
			if [ "$tries" -lt "$BUSY_RETRIES" ] && awk -F'\t' -v b="$BUSY_CORES" '{ exit !($10 > b) }' <<<"$(tail -1 "$SWEEP")"; then
				tries=$((tries + 1))
				echo "events-bench: other processes used more than $BUSY_CORES cores; the step again in 15 s (retry $tries of $BUSY_RETRIES)"
				sleep 15
				continue
			fi
			break
		fi
		i=$((i + 1))
		sleep 4
	done
	stop_pid "$UAS_PID"
	stop_pid "$GW_PID"
	sleep 2
}

phase_sweep() {
	printf 'mode\trate\tattempted\tsuccessful\tfailed\tfailed_pct\tachieved_cps\tcpu_s\tcpu_ms_per_call\tother_cores\toutbox_depth_after\tpublished_in_step\tsipp_rc\tclean\n' >"$SWEEP"
	local m
	for m in $SWEEP_MODES; do sweep_mode "$m"; done
	{
		echo
		echo "## Usage events: max clean call rate, publishing on vs off"
		echo
		echo "tollgate $REV, $(date -u +%FT%TZ), $(nproc) CPUs, ${STEP_SECONDS} s of ${CALL_MS} ms calls per step, one gateway per mode. Clean: ≤ 0.1 % failed and ≥ 97 % of the target rate achieved."
		echo
		echo "| publishing | rate (calls/s) | attempted | failed | failed % | achieved calls/s | gateway CPU ms/call | other cores | outbox after | published | clean |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
		awk -F'\t' 'NR > 1 { printf "| %s | %d | %d | %d | %.3f | %d | %.3f | %.2f | %s | %s | %s |\n", $1, $2, $3, $5, $6, $7, $9, $10, $11, $12, $14 }' "$SWEEP"
		echo
		awk -F'\t' -v rates="$RATES" 'NR > 1 {
				if ($14 == "yes" && $2 > best[$1]) best[$1] = $2
				if ($14 != "yes") broke[$1] = 1
				if ($2 == 1000) cpu[$1] = $9
			}
			END {
				n = split(rates, r, " "); top = r[n]
				on = best["on"]; off = best["off"]
				printf "Highest clean rate: publishing on %s calls/s%s, off %s calls/s%s",
					on ? on : "none", ("on" in broke) ? "" : " (every step clean: at least that)",
					off ? off : "none", ("off" in broke) ? "" : " (every step clean: at least that)"
				if (on && off) printf "; on / off = %.2f (%+.1f %%)", on / off, 100 * (on - off) / off
				print "."
				if (("on" in cpu) && ("off" in cpu) && cpu["off"] > 0)
					printf "\nGateway CPU per call at 1,000 calls/s: on %.3f ms, off %.3f ms (on / off = %.2f, %+.3f ms per call).\n", cpu["on"], cpu["off"], cpu["on"] / cpu["off"], cpu["on"] - cpu["off"]
			}' "$SWEEP"
	} | tee -a "$SUMMARY"
	read -r RES_RATE RES_CPU <<<"$(awk -F'\t' 'NR > 1 {
			if ($14 == "yes" && $2 > best[$1]) best[$1] = $2
			if ($14 != "yes") broke[$1] = 1
			if ($2 == 1000) cpu[$1] = $9
		}
		END {
			on = best["on"] + 0; off = best["off"] + 0
			r = sprintf("%s%s/%s%s", ("on" in broke) ? "" : "≥", on, ("off" in broke) ? "" : "≥", off)
			if (on && off) r = r sprintf("_calls/s_(ratio_%.2f)", on / off)
			c = (("on" in cpu) && ("off" in cpu)) ? sprintf("%.3f/%.3f_ms_(%+.3f)", cpu["on"], cpu["off"], cpu["on"] - cpu["off"]) : "-"
			print r, c
		}' "$SWEEP")"
	RES_RATE=${RES_RATE//_/ }
	RES_CPU=${RES_CPU//_/ }
}

# --- outage: drain rate after OUTAGE_SECONDS without NATS ---------------------
phase_outage() {
	local dir=$OUT/outage url=nats://127.0.0.1:$EXT_NATS_PORT calls ns_pid core_pid js_pid uac_pid samp_pid t_down t_up t_end rc
	mkdir -p "$dir"
	rm -rf "$dir/natsd-store"
	calls=$((OUTAGE_RATE * (PRE_OUTAGE_SECONDS + OUTAGE_SECONDS)))
	echo "events-bench: outage: $calls calls at $OUTAGE_RATE/s, external nats-server on 127.0.0.1:$EXT_NATS_PORT stopped (SIG$OUTAGE_SIGNAL) after ${PRE_OUTAGE_SECONDS}s for ${OUTAGE_SECONDS}s; files in $dir"
	"$OUT/natsd" -port "$EXT_NATS_PORT" -store "$dir/natsd-store" 2>>"$dir/natsd.log" &
	ns_pid=$!
	PIDS+=("$ns_pid")
	wait_tcp "$EXT_NATS_PORT" 15 || { echo "events-bench: natsd did not start; see $dir/natsd.log" >&2; exit 1; }
	start_gateway "$dir" "  url: $url"
	start_evlat "$dir" core "$url"
	core_pid=$EVLAT_PID
	start_evlat "$dir" js "$url" -js
	js_pid=$EVLAT_PID
	start_uas "$dir"
	sleep 1
	scrape "$dir/metrics-before.txt"
	local pname
	pname=$(published_name "$dir/metrics-before.txt")
	# The sampler: /metrics every 200 ms.
	(
		while :; do
			t=$(now)
			curl -fsS --max-time 1 "http://127.0.0.1:$API_PORT/metrics" 2>/dev/null |
				awk -v t="$t" -v n="${pname:-none}" '
					$1 == "tollgate_outbox_depth" { d = $2 }
					($1 == n || index($1, n "{") == 1) { p += $NF; seen = 1 }
					END { if (d != "") printf "%s\t%s\t%s\n", t, d, seen ? sprintf("%.0f", p) : "-" }' || true
			sleep "$SAMPLE_INTERVAL"
		done
	) >"$dir/depth.tsv" &
	samp_pid=$!
	PIDS+=("$samp_pid")
	echo "sipp $(uac_args "$dir/uac.csv" "$OUTAGE_RATE" "$calls")" >"$dir/uac.cmd"
	# shellcheck disable=SC2046
	sipp $(uac_args "$dir/uac.csv" "$OUTAGE_RATE" "$calls") >"$dir/uac.screen" 2>&1 &
	uac_pid=$!
	PIDS+=("$uac_pid")
	sleep "$PRE_OUTAGE_SECONDS"
	kill -s "$OUTAGE_SIGNAL" "$ns_pid" 2>/dev/null || true
	wait "$ns_pid" 2>/dev/null || true
	forget_pid "$ns_pid"
	t_down=$(now)
	echo "events-bench: outage: nats-server stopped at $(date -u +%T)"
	sleep "$OUTAGE_SECONDS"
	"$OUT/natsd" -port "$EXT_NATS_PORT" -store "$dir/natsd-store" 2>>"$dir/natsd.log" &
	ns_pid=$!
	PIDS+=("$ns_pid")
	wait_tcp "$EXT_NATS_PORT" 15 || { echo "events-bench: natsd did not restart; see $dir/natsd.log" >&2; exit 1; }
	t_up=$(now)
	profile_start "$dir" 1
	echo "events-bench: outage: nats-server back at $(date -u +%T) after $(awk -v a="$t_down" -v b="$t_up" 'BEGIN { printf "%.1f", b - a }') s"
	set +e
	wait "$uac_pid"
	rc=$?
	set -e
	forget_pid "$uac_pid"
	wait_depth_zero "$DRAIN_TIMEOUT" || echo "events-bench: outage: the outbox did not empty within ${DRAIN_TIMEOUT}s" >&2
	t_end=$(now)
	scrape "$dir/metrics-after.txt"
	profile_finish "$dir"
	sleep 1
	stop_pid "$samp_pid"
	sleep 1
	stop_pid "$core_pid"
	stop_pid "$js_pid"
	stop_pid "$UAS_PID"
	stop_pid "$GW_PID"
	stop_pid "$ns_pid"
	printf 't_down=%s\nt_up=%s\nt_end=%s\n' "$t_down" "$t_up" "$t_end" >"$dir/times.env"
	local att ok fail cps
	read -r att ok fail cps <<<"$(uac_stats "$dir/uac.csv" "$calls")"
	# During the outage: calls SIPp completed between t_down and t_up.
	local during
	during=$(awk -F';' -v a="$t_down" -v b="$t_up" '
		function epoch(field,   p) { split(field, p, "\t"); return p[3] }
		NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
		{ t = epoch($col["CurrentTime"]); if (t <= a) { s0 = $col["SuccessfulCall(C)"]; f0 = $col["FailedCall(C)"] } if (t <= b) { s1 = $col["SuccessfulCall(C)"]; f1 = $col["FailedCall(C)"] } }
		END { printf "%d %d\n", s1 - s0, f1 - f0 }' "$dir/uac.csv")
	read -r OUT_OK_DURING OUT_FAIL_DURING <<<"$during"
	# The drain, from depth.tsv.
	read -r OUT_DEPTH_UP OUT_PEAK OUT_T_DRAIN OUT_T_EMPTY OUT_RATE OUT_BEST OUT_PUBRATE <<<"$(awk -F'\t' -v up="$t_up" '
		{ T[++n] = $1; D[n] = $2; P[n] = $3 }
		END {
			# depth at the restart: the last sample before it
			for (i = 1; i <= n && T[i] <= up; i++) iu = i
			du = D[iu]; peak = du; ip = iu
			for (i = iu + 1; i <= n; i++) {
				if (D[i] > peak) { peak = D[i]; ip = i }
				if (!is && D[i] < D[i - 1]) is = i - 1   # the sample before the first fall
				if (is && D[i] == 0) { ie = i; break }
			}
			if (!is || !ie) { printf "%d %d - - - - -\n", du, peak; exit }
			rate = (D[is] - D[ie]) / (T[ie] - T[is])
			# best 1 s: the largest fall over any span of >= 1 s between samples
			best = 0
			for (i = is; i < ie; i++) for (j = i + 1; j <= ie; j++) if (T[j] - T[i] >= 1) { r = (D[i] - D[j]) / (T[j] - T[i]); if (r > best) best = r; break }
			if (best == 0) best = rate   # the whole drain took less than 1 s
			pr = (P[is] != "-" && P[ie] != "-") ? sprintf("%.0f", (P[ie] - P[is]) / (T[ie] - T[is])) : "-"
			printf "%d %d %.2f %.2f %.0f %.0f %s\n", du, peak, T[is] - up, T[ie] - up, rate, best, pr
		}' "$dir/depth.tsv")"
	{
		echo
		echo "## Usage events: outbox drain after a ${OUTAGE_SECONDS} s NATS outage"
		echo
		echo "tollgate $REV, $(date -u +%FT%TZ), $(nproc) CPUs, external nats-server (testbed/cmd/natsd) stopped with SIG$OUTAGE_SIGNAL. Command: \`$(sed 's/-stf [^ ]*/-stf uac.csv/' "$dir/uac.cmd")\`"
		echo
		echo "SIPp: $att calls attempted, $ok successful, $fail failed, $cps calls/s (sipp exit $rc); during the outage $OUT_OK_DURING calls completed, $OUT_FAIL_DURING failed."
		echo
		echo "| outbox depth at the restart | peak after | first fall after the restart | empty after the restart | drain rate (first fall → 0) | best 1 s | publish counter during the drain |"
		echo "|---:|---:|---:|---:|---:|---:|---:|"
		echo "| $OUT_DEPTH_UP events | $OUT_PEAK | $OUT_T_DRAIN s | $OUT_T_EMPTY s | $OUT_RATE events/s | $OUT_BEST events/s | $OUT_PUBRATE events/s |"
		echo
		awk -F'\t' -v up="$t_up" 'NR > 1 && $1 >= int(up) && $2 > 0 { n += $2; last = $1 } END {
				if (last) printf "Arrivals at the JetStream consumer from the restart on: %d events until %.1f s after it, %.0f events/s.\n\n", n, last + 1 - up, n / (last + 1 - up) }' "$dir/js-series.tsv"
		echo "Publisher (/metrics deltas over the phase): published $(delta "$dir/metrics-before.txt" "$dir/metrics-after.txt" tollgate_events_published_total), duplicate acks $(delta "$dir/metrics-before.txt" "$dir/metrics-after.txt" tollgate_events_duplicate_acks_total), publish errors $(delta "$dir/metrics-before.txt" "$dir/metrics-after.txt" tollgate_events_publish_errors_total), skipped $(delta "$dir/metrics-before.txt" "$dir/metrics-after.txt" tollgate_events_skipped_total)."
		echo
		echo "| subscriber | events | expected (3 per successful call) | duplicate ids | reconnects |"
		echo "|---|---:|---:|---:|---:|"
		local l
		for l in core js; do
			jq -r --arg exp "$((3 * ok))" --arg name "$([ $l = core ] && echo 'core subscription (sees republishes; misses what is published before it has reconnected)' || echo 'JetStream ordered consumer (the stream)')" \
				'"| \($name) | \(.events) | \($exp) | \(.duplicates) | \(.reconnects) |"' "$dir/$l.json"
		done
	} | tee -a "$SUMMARY"
	RES_DRAIN="$OUT_DEPTH_UP events at the restart; $OUT_RATE events/s (first fall → 0; best 1 s $OUT_BEST), empty $OUT_T_EMPTY s after the restart"
}

RES_LAT=- RES_EVS=- RES_RATE=- RES_CPU=- RES_DRAIN=-
for phase in $PHASES; do
	case $phase in
	latency) phase_latency ;;
	sweep) phase_sweep ;;
	outage) phase_outage ;;
	*)
		echo "events-bench: unknown phase $phase (latency | sweep | outage)" >&2
		exit 2
		;;
	esac
done
{
	echo
	echo "## Usage events: summary ($REV, $(date -u +%F))"
	echo
	echo "| figure | result | target |"
	echo "|---|---|---|"
	echo "| events published per second at $RATE calls/s (3 per call) | $RES_EVS | - |"
	echo "| call end → event at the subscriber, p50 / p99 | $RES_LAT | p99 ≤ 50 ms |"
	echo "| max clean call rate, publishing on / off | $RES_RATE | on ≥ 95 % of off |"
	echo "| gateway CPU per call at 1,000 calls/s, on / off | $RES_CPU | - |"
	echo "| outbox after a ${OUTAGE_SECONDS} s outage at $OUTAGE_RATE calls/s: depth, drain rate | $RES_DRAIN | - |"
} | tee -a "$SUMMARY"
echo
echo "events-bench: load average at the end $(cut -d' ' -f1-3 /proc/loadavg); summary in $SUMMARY"
