#!/usr/bin/env bash
# Load benchmark: SIPp calls through the gateway.
#
#   testbed/bench.sh                      # rates mode, tollgate
#   TARGET=kamailio testbed/bench.sh      # rates mode, Kamailio with testbed/kamailio/kamailio.cfg
#   MODE=compare testbed/bench.sh         # compare mode (run by `make bench`)
#   MODE=compare PROFILE=1 testbed/bench.sh   # ... plus a CPU profile of tollgate
#
# Parties on loopback, as in configs/tollgate.yaml: SIPp uas is the carrier
# (127.0.0.2), SIPp uac the tenant's PBX (127.0.0.10), the proxy under test
# listens on 127.0.0.1 (UDP). Every call: INVITE, 180, 200, ACK, (hold), BYE,
# 200 (SIPp's built-in uac and uas).
#
# Rates mode (MODE=rates, the default): rising call rates with 0 s calls
# (-d 0), one proxy process for all steps. Per rate it records calls
# attempted, successful and failed, and the CPU time (utime+stime from
# /proc/PID/stat, the process and its children summed, divided by CLK_TCK)
# the proxy spent during the step. It prints a table, the highest rate with
# < 0.1 % failed calls (that also reached 95 % of its target rate), and the
# CPU per call at 500 calls/s.
#
# Compare mode (MODE=compare): tollgate and then Kamailio, in one
# invocation, each at RATE calls/s (default 500) with each call duration of
# DURATIONS (default 1 s and 10 s: ~500 and ~5,000 concurrent calls, all in
# one tenant). Every step (target x duration) gets a freshly started proxy
# (tollgate: a new, empty Badger store) and SIPp uas, IDLE_SECONDS of rest,
# then the idle memory is read (the first sample); SIPp's uac then places
# calls until MEMAT + 1 s. Once a second the script samples the proxy's CPU
# ticks and memory (process tree: VmRSS from /proc/PID/status and Pss from
# /proc/PID/smaps_rollup, each summed). The steady-state window is
# [RAMP, RAMP + STEADY_SECONDS] after the uac started, RAMP = call duration
# + 3 s (the concurrency has levelled off by then); in it:
#   CPU ms/call (steady) = proxy CPU in the window / calls placed in the
#       window (SIPp's OutgoingCall(C), interpolated at the sample times;
#       in steady state as many calls start as end);
#   concurrent calls = mean of SIPp uac's CurrentCall over the window.
# Memory is read at MEMAT = call duration + 35 s (finished transactions
# linger, at most 1 s in tollgate, 32 s at sipgo's RFC default, so memory
# levels off only then), or
# the window's end if later (MEMORY_AT sets it):
#   RSS/active call = (RSS at MEMAT - idle RSS) / CurrentCall at MEMAT;
#       PSS/active call the same with Pss.
# "CPU ms/call (whole step)" is the proxy CPU from the uac's start to its
# exit (ramp-up and ramp-down included) over the successful calls.
# For Kamailio, RSS summed over its processes counts the shared-memory pool
# (-m) once per process that touched a page; PSS divides shared pages among
# the processes mapping them, so the PSS sum is its real footprint and the
# figure to compare (tollgate is one process: its RSS and PSS are equal).
# A window is a steady state if SIPp retransmitted fewer messages in it than
# 1 % of its calls and no second of it had a mean INVITE -> 200 time above
# 200 ms; otherwise the row says "NO: overloaded" (the proxy, or the
# machine, did not keep up) and its ratios are marked. "other cores" is the
# CPU that processes not started by the script used in the window (another
# engineer's build or benchmark); above 0.1 core the row says so.
# The table also gives tollgate/Kamailio ratios per call duration and the
# 10 s / 1 s ratio per target.
#
#   MODE=report OUT=testbed/results/compare-<time> testbed/bench.sh
# prints the table again from a compare run's raw files.
#
# Compare mode's tollgate config (PLAN=demo) is what a new user runs: the
# demo plan of configs/tollgate.yaml (limits, rate table, destination
# classes, the demo tenant's roles), with only max_parallel_calls and
# max_calls_per_second lifted to -1 and the monthly minutes and spend caps
# raised to 1,000 times the demo's (10,000,000 minutes, 500,000), still set
# so the budget code runs and far above what the run uses; persistence on
# (Badger, sync), log level warn, admin API on (its /metrics gives the
# gateway's own count of active calls).
#
# Environment:
#   MODE          rates (default) | compare | report
#   TARGET        rates mode: tollgate (default) | kamailio
#   TARGETS       compare mode: targets in order (default "tollgate kamailio")
#   PERSIST       on (default: Badger in $OUT/.../data, fsync per group
#                 commit) | off (in-memory store): tollgate only
#   PLAN          tollgate's plan: bare (rates mode's default: no caps,
#                 max_parallel_calls -1) | demo (compare mode's default,
#                 see above)
#   RATES         rates mode: calls/s per step (default
#                 "200 400 500 600 800 1000 1200 1500 2000")
#   STEP_SECONDS  rates mode: seconds of calls per step (default 15)
#   RATE          compare mode: calls/s (default 500)
#   DURATIONS     compare mode: call durations in ms (default "1000 10000")
#   STEADY_SECONDS  compare mode: length of the steady-state window (default 20)
#   IDLE_SECONDS  compare mode: rest after start before the idle memory is
#                 read (default 3)
#   MEMORY_AT     compare mode: seconds after the uac's start at which the
#                 memory is read (default call duration + 35, at least the
#                 window's end)
#   PROFILE       compare mode: 1 = a 10 s CPU profile of tollgate in the
#                 middle of the longest call duration's window: writes
#                 debug.listen 127.0.0.1:PORT_BASE+4 into the config (needs a
#                 tollgate with the pprof endpoint), fetches
#                 /debug/pprof/profile?seconds=10 into $OUT/cpu.pprof, writes
#                 `go tool pprof -top` and a coarse breakdown to
#                 $OUT/profile.txt; and, at the memory sample, the heap
#                 profile ($OUT/heap.pprof), runtime.MemStats
#                 ($OUT/memstats.txt) and /proc/PID/status
#                 ($OUT/status-at-memory-sample.txt). The profiled step's CPU
#                 includes the profiler's overhead.
#   MEDIA         tollgate's media.mode (default off: signalling only, as
#                 the Kamailio it is compared with; relay anchors every
#                 call's SDP, 2,500 calls at most in the default ports)
#   MEMTABLE_MIB  tollgate's store.memtable_mib (default: unset, the
#                 config default). The environment reaches tollgate, so
#                 GOGC=50 or GOMEMLIMIT=... apply to it as well.
#   PORT_BASE     proxy on 127.0.0.1:PORT_BASE, uac on 127.0.0.10:PORT_BASE+1,
#                 uas on 127.0.0.2:PORT_BASE+2, tollgate's admin API (compare
#                 mode) on TCP 127.0.0.1:PORT_BASE+3, pprof on PORT_BASE+4,
#                 SIPp media ports PORT_BASE+940 (uas) and +1040 (uac)
#                 (default 25060)
#   KAMAILIO_CHILDREN  Kamailio UDP worker processes (rates mode: default 4;
#                 compare mode: a list, one Kamailio step set each, default
#                 "1 4")
#   SIPP_BUFF     SIPp socket buffer bytes (default 8388608; the kernel caps
#                 it at net.core.rmem_max/wmem_max)
#   OUT           directory for configs, logs and SIPp stats
#                 (default testbed/results/<target or compare>-<timestamp>)
#
# Not run by CI: it takes a few minutes and wants an otherwise idle machine.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

MODE=${MODE:-rates}
TARGET=${TARGET:-tollgate}
PERSIST=${PERSIST:-on}
RATES=${RATES:-"200 400 500 600 800 1000 1200 1500 2000"}
STEP_SECONDS=${STEP_SECONDS:-15}
RATE=${RATE:-500}
DURATIONS=${DURATIONS:-"1000 10000"}
STEADY_SECONDS=${STEADY_SECONDS:-20}
IDLE_SECONDS=${IDLE_SECONDS:-3}
PROFILE=${PROFILE:-0}
MEDIA=${MEDIA:-off}
# EVENTS=true (the default, as shipped): the embedded NATS server runs in
# process (no client port) and every call's three events are published;
# false: no NATS, events stay in the outbox (the figures before issue 11).
EVENTS=${EVENTS:-true}
PORT_BASE=${PORT_BASE:-25060}
SIPP_BUFF=${SIPP_BUFF:-8388608}
GW_PORT=$PORT_BASE
UAC_PORT=$((PORT_BASE + 1))
UAS_PORT=$((PORT_BASE + 2))
API_PORT=$((PORT_BASE + 3))
DEBUG_PORT=$((PORT_BASE + 4))
UAS_MEDIA_PORT=$((PORT_BASE + 940))
UAC_MEDIA_PORT=$((PORT_BASE + 1040))
CLK_TCK=$(getconf CLK_TCK)
case $MODE in
rates)
	PLAN=${PLAN:-bare}
	KAMAILIO_CHILDREN=${KAMAILIO_CHILDREN:-4}
	OUT=${OUT:-$ROOT/testbed/results/$TARGET-$(date -u +%Y%m%dT%H%M%SZ)}
	;;
compare)
	PLAN=${PLAN:-demo}
	TARGETS=${TARGETS:-"tollgate kamailio"}
	KAMAILIO_CHILDREN=${KAMAILIO_CHILDREN:-"1 4"}
	OUT=${OUT:-$ROOT/testbed/results/compare-$(date -u +%Y%m%dT%H%M%SZ)}
	;;
report)
	PLAN=${PLAN:-demo}
	if [ -z "${OUT:-}" ] || [ ! -s "$OUT/steps.txt" ]; then
		echo "bench: MODE=report needs OUT=<a compare run's directory>" >&2
		exit 2
	fi
	;;
*)
	echo "bench: unknown MODE $MODE (rates | compare | report)" >&2
	exit 2
	;;
esac
case $PLAN in bare | demo) ;; *)
	echo "bench: unknown PLAN $PLAN (bare | demo)" >&2
	exit 2
	;;
esac

[ "$MODE" = report ] || command -v sipp >/dev/null || { echo "bench: sipp not found (Debian/Ubuntu package sip-tester)" >&2; exit 1; }
mkdir -p "$OUT"

NAME=bench
# shellcheck source=testbed/lib.sh
. "$ROOT/testbed/lib.sh"
# proc_sample PID: "ticks rss_kib pss_kib processes" of PID and its
# descendants (CPU ticks, summed VmRSS and Pss).
proc_sample() {
	local pid ticks t=0 n=0 files=()
	while read -r pid ticks; do
		t=$((t + ticks))
		n=$((n + 1))
		files+=("/proc/$pid/status" "/proc/$pid/smaps_rollup")
	done < <(tree_ticks "$1")
	if [ "$n" = 0 ]; then
		echo "0 0 0 0"
		return
	fi
	{ cat "${files[@]}" 2>/dev/null || true; } |
		awk -v t="$t" -v n="$n" '/^VmRSS:/ { r += $2 } /^Pss:/ { p += $2 } END { print t, r + 0, p + 0, n }'
}

# children_cpu: CPU seconds (user+sys) of this shell's reaped children, from
# the output of the "times" builtin in $OUT/.times. "times" itself must run in
# the script's own shell, not in $(...): a forked subshell has no children.
children_cpu() {
	awk 'NR == 2 {
		t = 0
		for (i = 1; i <= 2; i++) { split($i, a, "m"); sub(/s$/, "", a[2]); t += a[1] * 60 + a[2] }
		printf "%.3f\n", t
	}' "$OUT/.times"
}

if [ "$MODE" != report ]; then
	for p in "127.0.0.1 $GW_PORT" "127.0.0.2 $UAS_PORT" "127.0.0.10 $UAC_PORT" \
		"127.0.0.2 $UAS_MEDIA_PORT" "127.0.0.10 $UAC_MEDIA_PORT"; do
		# shellcheck disable=SC2086
		if udp_listening $p; then
			echo "bench: UDP ${p// /:} already in use; set PORT_BASE" >&2
			exit 1
		fi
	done
fi
if [ "$MODE" = compare ]; then
	for p in "$API_PORT" "$DEBUG_PORT"; do
		if tcp_listening 127.0.0.1 "$p"; then
			echo "bench: TCP 127.0.0.1:$p already in use; set PORT_BASE" >&2
			exit 1
		fi
	done
fi

# --- the proxy under test ---------------------------------------------------

# memtable_line: store.memtable_mib for MEMTABLE_MIB, or nothing (the default).
memtable_line() {
	if [ -n "${MEMTABLE_MIB:-}" ]; then echo "  memtable_mib: $MEMTABLE_MIB"; fi
}

# write_tollgate_config FILE DATA_DIR: the bench config for PLAN (and, in
# compare mode, the admin API; with PROFILE=1 the pprof listener).
write_tollgate_config() {
	local file=$1 data_dir=$2
	{
		cat <<EOF
# written by testbed/bench.sh (MODE=$MODE, PLAN=$PLAN)
log:
  level: warn
  format: json
EOF
		if [ "$PLAN" = bare ]; then
			cat <<EOF
sip:
  listen:
    - transport: udp
      address: 127.0.0.1:$GW_PORT
  advertise: 127.0.0.1
  timer_c: 10s
  shutdown_grace: 0s
media:
  mode: $MEDIA
nats:
  enabled: $EVENTS
  listen: "off"
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
store:
  data_dir: "$data_dir"
$(memtable_line)
EOF
		else
			# configs/tollgate.yaml's demo, on the bench's ports. Changed:
			# max_parallel_calls and max_calls_per_second -1, the monthly
			# caps x1000, shutdown_grace 0s, UDP only.
			cat <<EOF
sip:
  listen:
    - transport: udp
      address: 127.0.0.1:$GW_PORT
  advertise: 127.0.0.1
  timer_c: 180s
  max_call_duration: 4h
  shutdown_grace: 0s
media:
  mode: $MEDIA
nats:
  enabled: $EVENTS
  listen: "off"
admission:
  reject:
    parallel_calls: {code: 486, reason: Busy Here}
    cps: {code: 503, reason: Service Unavailable}
    minutes: {code: 403, reason: Forbidden}
    destination_class: {code: 403, reason: Forbidden}
  resume_on_rollover: true
emergency_numbers: ["112", "911"]
destination_classes:
  international: ["00", "+"]
  premium: ["1900", "+1900"]
carriers:
  - name: carrier
    address: 127.0.0.2:$UAS_PORT
    transport: udp
    sources: [127.0.0.2/32]
plans:
  - name: standard
    limits:
      max_parallel_calls: -1
      max_parallel_inbound: -1
      max_parallel_outbound: -1
      max_calls_per_second: -1
      cps_burst: 50
      max_monthly_minutes: 10000000
      monthly_spend_limit: 500000
      alert_threshold_pct: 80
      auto_suspend: true
      destinations:
        international: true
        premium: false
    rates:
      - prefix: ""
        per_minute: 0.01
        connect_fee: 0
        increments: "60/60"
      - prefix: "00"
        per_minute: 0.12
        connect_fee: 0.05
        increments: "6/6"
      - prefix: "+"
        per_minute: 0.12
        connect_fee: 0.05
        increments: "6/6"
tenant_defaults:
  max_parallel_calls: 5
tenants:
  - name: demo
    plan: standard
    carrier: carrier
    sources: [127.0.0.10/32]
    limits:
      max_parallel_calls: null
    roles:
      - name: reception
        max_parallel_calls: 2
        max_monthly_minutes: 1000
        users: ["100", "101"]
        patterns: ["10?"]
store:
  data_dir: "$data_dir"
  sync: true
  commit_interval: 10ms
  checkpoint_interval: 1s
$(memtable_line)
  retention:
    usage: 9600h
    audit: 9600h
    outbox: 720h
EOF
		fi
		if [ "$MODE" = compare ]; then
			echo "api:"
			echo "  listen: 127.0.0.1:$API_PORT"
		else
			echo "api:"
			echo '  listen: "off"'
		fi
		if [ "$PROFILE" = 1 ] && [ "$MODE" = compare ]; then
			echo "debug:"
			echo "  listen: 127.0.0.1:$DEBUG_PORT"
		fi
	} >"$file"
}

BUILT=
build_tollgate() {
	if [ -z "$BUILT" ]; then
		echo "bench: building bin/tollgate"
		go build -o bin/tollgate ./cmd/tollgate
		BUILT=1
	fi
}

# start_proxy TARGET DIR CHILDREN: starts the proxy with its files in DIR;
# sets PROXY_PID and PROXY_DESC.
start_proxy() {
	local target=$1 dir=$2 children=$3 data_dir
	case $target in
	tollgate)
		build_tollgate
		if [ "$PERSIST" = on ]; then data_dir=$dir/data; else data_dir=":memory:"; fi
		write_tollgate_config "$dir/tollgate-bench.yaml" "$data_dir"
		bin/tollgate serve -c "$dir/tollgate-bench.yaml" 2>"$dir/tollgate.log" &
		PROXY_PID=$!
		PIDS+=("$PROXY_PID")
		PROXY_DESC="tollgate $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?') (go build, log level warn, plan $PLAN, persistence $PERSIST)"
		;;
	kamailio)
		KAMAILIO=${KAMAILIO:-$(command -v kamailio || echo /usr/sbin/kamailio)}
		[ -x "$KAMAILIO" ] || { echo "bench: kamailio not found (apt-get install kamailio)" >&2; exit 1; }
		local kcfg=$ROOT/testbed/kamailio/kamailio.cfg
		local kdefs=(-A "GW_PORT=$GW_PORT" -A "UAS_PORT=$UAS_PORT" -A "CHILDREN=$children")
		"$KAMAILIO" -c -f "$kcfg" "${kdefs[@]}" >"$dir/kamailio-check.log" 2>&1 ||
			{ cat "$dir/kamailio-check.log" >&2; exit 1; }
		# -DD: stay in the foreground (no daemon), children still forked; -E: log to stderr.
		"$KAMAILIO" -DD -E -f "$kcfg" "${kdefs[@]}" \
			-P "$dir/kamailio.pid" -Y "$dir" -m 512 -M 32 >"$dir/kamailio.log" 2>&1 &
		PROXY_PID=$!
		PIDS+=("$PROXY_PID")
		PROXY_DESC="$("$KAMAILIO" -v 2>/dev/null | head -1 | sed 's/^version: //') (testbed/kamailio/kamailio.cfg, $children UDP workers, -m 512 -M 32)"
		;;
	*)
		echo "bench: unknown target $target (tollgate | kamailio)" >&2
		exit 2
		;;
	esac
	wait_listening 127.0.0.1 "$GW_PORT"
}

# start_uas DIR: the carrier, SIPp's built-in uas; sets UAS_PID. Extra
# arguments go to SIPp.
start_uas() {
	local dir=$1
	shift
	sipp -sn uas -i 127.0.0.2 -p "$UAS_PORT" -mi 127.0.0.2 -mp "$UAS_MEDIA_PORT" \
		-nostdin -buff_size "$SIPP_BUFF" -max_recv_loops 5000 -max_sched_loops 5000 \
		"$@" >"$dir/uas.screen" 2>&1 &
	UAS_PID=$!
	PIDS+=("$UAS_PID")
	wait_listening 127.0.0.2 "$UAS_PORT"
}

# --- rates mode ---------------------------------------------------------------
run_rates() {
	start_proxy "$TARGET" "$OUT" "$KAMAILIO_CHILDREN"
	start_uas "$OUT"

	echo "bench: $PROXY_DESC on 127.0.0.1:$GW_PORT; $(nproc) CPUs; ${STEP_SECONDS}s per step; output in $OUT"

	local RESULTS=$OUT/results.tsv
	printf 'rate\tattempted\tsuccessful\tfailed\tfailed_pct\tachieved_cps\tcpu_s\tcpu_ms_per_call\tsipp_cpu_s\n' >"$RESULTS"

	local rate calls stf t0 t1 u0 u1 c0 c1 rc attempted successful failed cps
	for rate in $RATES; do
		calls=$((rate * STEP_SECONDS))
		stf=$OUT/uac-$rate.csv
		rm -f "$stf"
		kill -0 "$PROXY_PID" 2>/dev/null || { echo "bench: the proxy died; see $OUT" >&2; exit 1; }
		t0=$(cpu_ticks "$PROXY_PID")
		u0=$(cpu_ticks "$UAS_PID")
		times >"$OUT/.times"
		c0=$(children_cpu)
		# -d 0: answer, ACK, BYE at once. -timeout bounds the step; calls not
		# placed by then count as not attempted, calls in flight as failed.
		set +e
		sipp -sn uac -i 127.0.0.10 -p "$UAC_PORT" -mi 127.0.0.10 -mp "$UAC_MEDIA_PORT" -s 15550001 \
			"127.0.0.1:$GW_PORT" -r "$rate" -m "$calls" -l 100000 -d 0 \
			-nostdin -buff_size 4194304 -max_recv_loops 5000 -max_sched_loops 5000 \
			-recv_timeout 10000 -timeout "$((STEP_SECONDS + 20))s" \
			-trace_stat -stf "$stf" -fd 1 \
			>"$OUT/uac-$rate.screen" 2>&1
		rc=$?
		set -e
		t1=$(cpu_ticks "$PROXY_PID")
		u1=$(cpu_ticks "$UAS_PID")
		times >"$OUT/.times"
		c1=$(children_cpu)
		if [ ! -s "$stf" ]; then
			echo "bench: rate $rate: no SIPp stats (exit code $rc); see $OUT/uac-$rate.screen" >&2
			continue
		fi
		# The stats CSV, by column name: the last row has the totals; the rows
		# written each second (-fd 1) while calls were still being placed give
		# the rate SIPp actually achieved (the last such row: calls placed so
		# far over the time since the start).
		read -r attempted successful failed cps <<<"$(awk -F';' '
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
				printf "%d %d %d %.0f\n", a, v[col["SuccessfulCall(C)"]], v[col["FailedCall(C)"]], cps
			}' want="$calls" "$stf")"
		# Calls still in flight when SIPp stopped count as failed.
		failed=$((attempted - successful))
		awk -v rate="$rate" -v a="$attempted" -v s="$successful" -v f="$failed" \
			-v t0="$t0" -v t1="$t1" -v u0="$u0" -v u1="$u1" -v c0="$c0" -v c1="$c1" \
			-v hz="$CLK_TCK" -v cps="$cps" 'BEGIN {
			cpu = (t1 - t0) / hz
			pct = a > 0 ? 100 * f / a : 100
			per = s > 0 ? 1000 * cpu / s : 0
			# SIPp: the uas (a child of this script) plus the uac just reaped.
			sippcpu = (u1 - u0) / hz + (c1 - c0)
			printf "%d\t%d\t%d\t%d\t%.3f\t%.0f\t%.2f\t%.3f\t%.2f\n", rate, a, s, f, pct, cps, cpu, per, sippcpu
		}' >>"$RESULTS"
		tail -1 "$RESULTS" | awk -F'\t' -v rc="$rc" '{ printf "bench: rate %5d: attempted %6d, successful %6d, failed %5d (%.3f%%), %s calls/s achieved, CPU %.2fs = %.3f ms/call, SIPp CPU %.2fs (sipp exit %d)\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, rc }'
		# Let the proxy forget the step's calls (timewait, transactions).
		sleep 5
	done

	echo
	echo "## $TARGET, $(nproc) CPUs, ${STEP_SECONDS}s per step"
	echo
	awk -F'\t' '
		NR == 1 {
			print "| rate (calls/s) | attempted | successful | failed | failed % | achieved calls/s | proxy CPU s | proxy CPU ms/call | SIPp CPU s |"
			print "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
			next
		}
		{ printf "| %d | %d | %d | %d | %.3f | %d | %.2f | %.3f | %.2f |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }
		# Clean: < 0.1 % failed and at least 95 % of the target rate reached.
		NR > 1 && $5 < 0.1 && $6 >= 0.95 * $1 && $1 > best { best = $1 }
		NR > 1 && $1 == 500 { at500 = $8; per1000 = $8 }
		END {
			print ""
			if (best) printf "Highest clean rate (< 0.1 %% failed, >= 95 %% of target reached): %d calls/s\n", best
			else print "Highest clean rate: none of the steps was clean"
			if (at500 != "") printf "CPU at 500 calls/s: %.3f ms per call = %.2f CPU seconds per 1,000 calls\n", at500, per1000
		}' "$RESULTS" | tee "$OUT/summary.md"
}

# --- compare mode -------------------------------------------------------------

# active_calls_metric FILE: tollgate's own count of active calls from a
# /metrics scrape ("-" when there is none).
active_calls_metric() {
	awk '$1 == "tollgate_active_calls_total" { v = $2 } END { print (v == "" ? "-" : v) }' "$1" 2>/dev/null || echo -
}

# profile_report PPROF: go tool pprof -top, and a coarse breakdown of the
# samples by what they were doing.
profile_report() {
	local pprof=$1
	echo "# CPU profile of tollgate: $pprof"
	echo "# $PROFILE_NOTE"
	echo
	go tool pprof -top -nodecount=25 "$ROOT/bin/tollgate" "$pprof" 2>&1
	echo
	echo "## Coarse breakdown (each sample counted once, first matching row wins)"
	echo
	# -traces: per stack, a line "-----+---", then "<value> <leaf>" and the
	# callers one a line.
	go tool pprof -traces "$ROOT/bin/tollgate" "$pprof" 2>/dev/null | awk '
		function ms(v) {
			if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
			if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
			if (v ~ /ns$/) { sub(/ns$/, "", v); return v / 1e6 }
			if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000 }
			if (v ~ /m$/) { sub(/m$/, "", v); return v * 60000 }
			return v + 0
		}
		function classify(   i) {
			# GC work anywhere on the stack, then allocation.
			for (i = 1; i <= n; i++) if (fr[i] ~ /^runtime\.(gcBgMarkWorker|gcAssistAlloc|gcDrain|markroot|scanobject|scanblock|scanstack|greyobject|gcStart|gcMarkDone|gcMarkTermination|bgsweep|sweepone|bgscavenge|wbBufFlush|gcWriteBarrier)/) return "GC (mark, sweep, assist, write barrier)"
			for (i = 1; i <= n; i++) if (fr[i] ~ /^runtime\.(mallocgc|newobject|makeslice|growslice|newarray|rawstring|rawbyteslice|makemap|memclrNoHeapPointers)/) return "allocation (mallocgc & co.)"
			for (i = 1; i <= n; i++) if (fr[i] ~ /^runtime\.(newstack|copystack|morestack)/) return "goroutine stack growth"
			# System calls and the netpoller.
			for (i = 1; i <= n; i++) if (fr[i] ~ /^(syscall\.|internal\/runtime\/syscall|internal\/poll\.|golang\.org\/x\/sys\/unix|runtime\.(futex|netpoll|epollwait|usleep|write1|read|entersyscall|exitsyscall))/) return "syscalls, netpoll, futex"
			# Otherwise the innermost frame of a known package.
			for (i = 1; i <= n; i++) {
				if (fr[i] ~ /dgraph-io\/(badger|ristretto)/) return "Badger (store)"
				if (fr[i] ~ /emiago\/sipgo/) return "sipgo"
				if (fr[i] ~ /tollgate\/admission/) return "tollgate admission engine"
				if (fr[i] ~ /tollgate\/store/) return "tollgate store (journal, committer)"
				if (fr[i] ~ /tollgate\/control/) return "tollgate control"
				if (fr[i] ~ /tollgate\/sip/) return "tollgate sip (gateway)"
				if (fr[i] ~ /rs\/zerolog/) return "zerolog"
				if (fr[i] ~ /prometheus/) return "prometheus"
			}
			for (i = 1; i <= n; i++) if (fr[i] ~ /^runtime\.(schedule|findRunnable|mcall|park_m|gopark|goready|ready|runqsteal|stealWork|wakep|startm|stopm|notesleep|mPark|selectgo|chansend|chanrecv|lock|unlock|runtimer|checkTimers|sysmon)/) return "Go scheduler, timers, channels"
			return "other"
		}
		function flush() {
			if (n > 0) { c = classify(); total += val; by[c] += val }
			n = 0
		}
		/^-+\+-+$/ { flush(); inside = 1; next }
		!inside { next }
		{
			if (n == 0 && $1 ~ /^[0-9.]+(ns|us|ms|s|m|h)?$/) { val = ms($1); fr[++n] = $2; next }
			if (NF >= 1) fr[++n] = $NF
		}
		END {
			flush()
			if (total == 0) { print "(no samples)"; exit }
			printf "| what | CPU ms | share |\n|---|---:|---:|\n"
			fflush()
			for (c in by) printf "| %s | %.0f | %.1f %% |\n", c, by[c], 100 * by[c] / total | "sort -t\"|\" -k3 -rn"
			close("sort -t\"|\" -k3 -rn")
			printf "| total | %.0f | 100 %% |\n", total
		}'
}

# step_row DIR: the results.tsv row of the compare step in DIR, from its
# step.env, samples.tsv and the uac's (and uas's) per-second stats.
step_row() {
	local label secs rate ramp steady metric rc memat=
	# shellcheck disable=SC1091
	. "$1/step.env"
	memat=${memat:-$((ramp + steady))}
	# shellcheck disable=SC2016
	awk -F'\t' -v label="$label" -v secs="$secs" -v rate="$rate" -v hz="$CLK_TCK" \
		-v ramp="$ramp" -v steady="$steady" -v rc="$rc" -v memat="$memat" \
		-v metric="$metric" -v uas="$1/uas.csv" -v stf="$1/uac.csv" '
		function epoch(field,   p) { split(field, p, "\t"); return p[3] + 0 }
		# interp(col, t): the uac stats column col at time t, linear between rows.
		function interp(c, t,   i) {
			if (t <= T[1]) return V[c, 1]
			for (i = 2; i <= nr; i++) if (T[i] >= t) return V[c, i - 1] + (V[c, i] - V[c, i - 1]) * (t - T[i - 1]) / (T[i] - T[i - 1])
			return V[c, nr]
		}
		function abs(x) { return x < 0 ? -x : x }
		# hms("HH:MM:SS:microseconds"): milliseconds.
		function hms(v,   q) { split(v, q, ":"); return ((q[1] * 60 + q[2]) * 60 + q[3]) * 1000 + q[4] / 1000 }
		BEGIN {
			FS = ";"
			while ((getline line < stf) > 0) {
				m = split(line, f, ";")
				if (!hdr) { for (i = 1; i <= m; i++) col[f[i]] = i; hdr = 1; continue }
				nr++
				T[nr] = epoch(f[col["CurrentTime"]])
				V["out", nr] = f[col["OutgoingCall(C)"]]
				V["cur", nr] = f[col["CurrentCall"]]
				V["retr", nr] = f[col["Retransmissions(C)"]]
				V["rt", nr] = hms(f[col["ResponseTime1(P)"]])
				last = line
			}
			split(last, L, ";")
			attempted = L[col["OutgoingCall(C)"]]; ok = L[col["SuccessfulCall(C)"]]
			# Mean INVITE -> 200 time, "HH:MM:SS:microseconds".
			resp = hms(L[col["ResponseTime1(C)"]])
			why = ""
			for (k in col) if (k ~ /^Failed.*\(C\)$/ && k != "FailedCall(C)" && L[col[k]] > 0) why = why (why == "" ? "" : ",") substr(k, 7, length(k) - 9) "=" L[col[k]]
			uasfail = 0; uh = 0
			while ((getline line < uas) > 0) {
				m = split(line, f, ";")
				if (!uh) { for (i = 1; i <= m; i++) ucol[f[i]] = i; uh = 1; continue }
				uasfail = f[ucol["FailedCall(C)"]]
			}
			FS = "\t"
		}
		FNR == 1 { next }
		{ n++; E[n] = $1; P[n] = $2; R[n] = $3; S[n] = $4; UAC[n] = $6; UAS[n] = $7; M[n] = $8 }
		END {
			# The first sample, taken just before the uac started, is the idle one.
			start = E[1]; I[2] = R[1]; I[3] = S[1]
			w0 = start + ramp; w1 = start + ramp + steady; w2 = start + memat
			i0 = 1; i1 = 1; i2 = 1
			for (i = 1; i <= n; i++) {
				if (abs(E[i] - w0) < abs(E[i0] - w0)) i0 = i
				if (abs(E[i] - w1) < abs(E[i1] - w1)) i1 = i
				if (abs(E[i] - w2) < abs(E[i2] - w2)) i2 = i
			}
			win = E[i1] - E[i0]
			cpu = (P[i1] - P[i0]) / hz
			placed = interp("out", E[i1]) - interp("out", E[i0])
			conc_sum = 0; conc_n = 0
			for (i = 1; i <= nr; i++) if (T[i] >= E[i0] && T[i] <= E[i1]) { conc_sum += V["cur", i]; conc_n++ }
			conc = conc_n ? conc_sum / conc_n : 0
			# Memory: at the memory sample (w2), which is at or after the
			# window end.
			conc1 = interp("cur", E[i2])
			steady_ms = placed > 0 ? 1000 * cpu / placed : 0
			whole = (P[n] - P[1]) / hz
			whole_ms = ok > 0 ? 1000 * whole / ok : 0
			rss_call = conc1 > 0 ? (R[i2] - I[2]) / conc1 : 0
			pss_call = conc1 > 0 ? (S[i2] - I[3]) / conc1 : 0
			# SIPp (uac + uas) CPU in the window, in cores.
			sipp = win > 0 ? (UAC[i1] - UAC[i0] + UAS[i1] - UAS[i0]) / hz / win : 0
			# CPU of the processes not started by this script.
			other = (M[i0] != "" && win > 0) ? (M[i1] - M[i0]) / hz / win : -1
			if (why == "") why = "-"
			# Steady state: SIPp retransmitted fewer messages than 1 % of the
			# calls of the window and no second of it had a mean INVITE -> 200
			# above 200 ms; otherwise the proxy (or the machine) was
			# overloaded and the window is not a steady state.
			rt_max = 0
			for (i = 1; i <= nr; i++) if (T[i] >= E[i0] && T[i] <= E[i1] && V["rt", i] > rt_max) rt_max = V["rt", i]
			retr = interp("retr", E[i1]) - interp("retr", E[i0])
			steady_ok = "yes"
			if (retr > 0.01 * placed || rt_max > 200) steady_ok = sprintf("NO: overloaded (%.0f retransmissions, INVITE->200 up to %.0f ms)", retr, rt_max)
			if (other > 0.1) steady_ok = steady_ok sprintf("; other processes used %.2f cores", other)
			printf "%s\t%d\t%d\t%.0f\t%.0f\t%s\t%.1f\t%.2f\t%.0f\t%.3f\t%.3f\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t%.2f\t%d\t%d\t%d\t%d\t%s\t%d\t%.1f\t%.1f\t%d\t%s\t%s\n", \
				label, secs, rate, conc, conc1, metric, win, cpu, placed, steady_ms, whole_ms, \
				I[2] / 1024, R[i2] / 1024, rss_call, pss_call, cpu / (win > 0 ? win : 1), sipp, \
				attempted, ok, attempted - ok, uasfail, why, rc, resp, rt_max, retr, steady_ok, other < 0 ? "-" : sprintf("%.2f", other)
		}' "$1/samples.tsv"
}

# The columns of results.tsv (compare mode).
RESULTS_HEADER=$(printf 'target\tcall_s\trate\tconcurrent\tconcurrent_end\tproxy_active_end\twindow_s\tcpu_s\tcalls_in_window\tcpu_ms_per_call\tcpu_ms_per_call_whole\tidle_rss_mib\trss_end_mib\trss_kib_per_call\tpss_kib_per_call\tproxy_cores\tsipp_cores\tattempted\tsuccessful\tfailed\tuas_failed\tfailure_kinds\tsipp_rc\tinvite_200_ms\tinvite_200_ms_worst_second\tretransmissions_in_window\tsteady\tother_cores')

# compare_step TARGET LABEL CHILDREN DURATION_MS: one step; appends a row to
# $OUT/results.tsv.
compare_step() {
	local target=$1 label=$2 children=$3 dur=$4
	local secs=$((dur / 1000)) dir ramp place memat calls stf samples rc start el
	dir=$OUT/$label-${secs}s
	mkdir -p "$dir"
	ramp=$(((dur + 999) / 1000 + 3))
	# Memory is read once the finished transactions (kept at most 1 s by
	# tollgate, 32 s at sipgo's default) have levelled off too: call duration + 35 s, or the window's end if
	# later (MEMORY_AT overrides).
	memat=${MEMORY_AT:-$((secs + 35))}
	if [ "$memat" -lt $((ramp + STEADY_SECONDS)) ]; then memat=$((ramp + STEADY_SECONDS)); fi
	place=$((memat + 1))
	calls=$((RATE * place))
	stf=$dir/uac.csv
	samples=$dir/samples.tsv

	start_proxy "$target" "$dir" "$children"
	start_uas "$dir" -trace_stat -stf "$dir/uas.csv" -fd 1 -trace_err -error_file "$dir/uas_errors.log"
	echo "bench: $label, ${secs}s calls: $PROXY_DESC; $calls calls at $RATE/s, window ${ramp}s..$((ramp + STEADY_SECONDS))s, memory at ${memat}s; files in $dir"
	sleep "$IDLE_SECONDS"

	local want_profile=0 prof_at=0 curl_pid="" metric_pid="" metric=- w1
	if [ "$PROFILE" = 1 ] && [ "$target" = tollgate ] && [ "$dur" = "$PROFILE_DURATION" ]; then
		want_profile=1
		prof_at=$((ramp + (STEADY_SECONDS - 10) / 2))
		if [ "$prof_at" -lt "$ramp" ]; then prof_at=$ramp; fi
	fi
	w1=$((ramp + STEADY_SECONDS))

	printf 'epoch\tproxy_ticks\trss_kib\tpss_kib\tprocs\tuac_ticks\tuas_ticks\tothers_ticks\n' >"$samples"
	rm -f "$dir/.others"
	start=$(now)
	printf '%s\t%s\t%s\t%s\t%s\n' "$start" "$(proc_sample "$PROXY_PID" | tr ' ' '\t')" 0 "$(cpu_ticks "$UAS_PID")" "$(others_ticks "$dir/.others")" >>"$samples"
	# -l: three times the expected concurrency, at least 1000 (SIPp wants
	# -l below the open-files limit). -timeout bounds the step: placing, the
	# last calls' duration, and 30 s.
	local limit=$((3 * RATE * (secs + 1)))
	if [ "$limit" -lt 1000 ]; then limit=1000; fi
	sipp -sn uac -i 127.0.0.10 -p "$UAC_PORT" -mi 127.0.0.10 -mp "$UAC_MEDIA_PORT" -s 15550001 \
		"127.0.0.1:$GW_PORT" -r "$RATE" -m "$calls" -l "$limit" -d "$dur" \
		-nostdin -buff_size "$SIPP_BUFF" -max_recv_loops 5000 -max_sched_loops 5000 \
		-recv_timeout 20000 -timeout "$((place + secs + 30))s" \
		-trace_stat -stf "$stf" -fd 1 -trace_err -error_file "$dir/uac_errors.log" \
		>"$dir/uac.screen" 2>&1 &
	local uac_pid=$!
	PIDS+=("$uac_pid")
	while kill -0 "$uac_pid" 2>/dev/null; do
		sleep 1
		el=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%d", b - a }')
		printf '%s\t%s\t%s\t%s\t%s\n' "$(now)" "$(proc_sample "$PROXY_PID" | tr ' ' '\t')" \
			"$(cpu_ticks "$uac_pid")" "$(cpu_ticks "$UAS_PID")" "$(others_ticks "$dir/.others")" >>"$samples"
		# In the background: an overloaded gateway may take seconds to answer.
		if [ "$target" = tollgate ] && [ -z "$metric_pid" ] && [ "$el" -ge "$memat" ]; then
			curl -fsS --max-time 20 -o "$dir/metrics.txt" "http://127.0.0.1:$API_PORT/metrics" 2>/dev/null &
			metric_pid=$!
			PIDS+=("$metric_pid")
			if [ "$want_profile" = 1 ]; then
				# Right after the memory sample: the process's view of its
				# memory (VmRSS = RssAnon + RssFile), the heap profile (as
				# of the last collection; none forced) and runtime.MemStats.
				cat "/proc/$PROXY_PID/status" >"$OUT/status-at-memory-sample.txt" 2>/dev/null || true
				curl -fsS --max-time 20 -o "$OUT/heap.pprof" "http://127.0.0.1:$DEBUG_PORT/debug/pprof/heap" 2>/dev/null || true
				curl -fsS --max-time 20 "http://127.0.0.1:$DEBUG_PORT/debug/pprof/heap?debug=1" 2>/dev/null |
					sed -n '/^# runtime.MemStats/,$p' >"$OUT/memstats.txt" || true
			fi
		fi
		if [ "$want_profile" = 1 ] && [ -z "$curl_pid" ] && [ "$el" -ge "$prof_at" ]; then
			curl -fsS --max-time 30 -o "$OUT/cpu.pprof" \
				"http://127.0.0.1:$DEBUG_PORT/debug/pprof/profile?seconds=10" 2>"$OUT/cpu.pprof.err" &
			curl_pid=$!
			PIDS+=("$curl_pid")
			PROFILE_NOTE="10 s from ${el} s after the uac started (${secs} s calls, window ${ramp}..${w1} s), $(date -u +%FT%TZ)"
		fi
	done
	set +e
	wait "$uac_pid"
	rc=$?
	set -e
	forget_pid "$uac_pid"
	printf '%s\t%s\t%s\t%s\t%s\n' "$(now)" "$(proc_sample "$PROXY_PID" | tr ' ' '\t')" 0 "$(cpu_ticks "$UAS_PID")" "$(others_ticks "$dir/.others")" >>"$samples"
	if [ -n "$metric_pid" ]; then
		wait "$metric_pid" || true
		forget_pid "$metric_pid"
		metric=$(active_calls_metric "$dir/metrics.txt")
	fi
	if [ -n "$curl_pid" ]; then
		if wait "$curl_pid" && [ -s "$OUT/cpu.pprof" ]; then
			profile_report "$OUT/cpu.pprof" >"$OUT/profile.txt"
			echo "bench: CPU profile in $OUT/cpu.pprof, report in $OUT/profile.txt"
		else
			echo "bench: PROFILE=1: no profile from 127.0.0.1:$DEBUG_PORT ($(cat "$OUT/cpu.pprof.err")); does this tollgate have debug.listen?" >&2
		fi
		forget_pid "$curl_pid"
	fi
	kill -0 "$PROXY_PID" 2>/dev/null || echo "bench: the proxy died during the step; see $dir" >&2
	stop_pid "$UAS_PID"
	stop_pid "$PROXY_PID"
	if [ ! -s "$stf" ]; then
		echo "bench: $label ${secs}s: no SIPp stats (exit code $rc); see $dir/uac.screen" >&2
		return
	fi

	# The step's parameters, for step_row (and MODE=report).
	printf 'label=%s\nsecs=%s\nrate=%s\nramp=%s\nsteady=%s\nmemat=%s\nmetric=%s\nrc=%s\n' \
		"$label" "$secs" "$RATE" "$ramp" "$STEADY_SECONDS" "$memat" "$metric" "$rc" >"$dir/step.env"
	echo "$dir" >>"$OUT/steps.txt"
	step_row "$dir" >>"$OUT/results.tsv"
	tail -1 "$OUT/results.tsv" | awk -F'\t' '{
		printf "bench: %s %ss: %.0f concurrent, steady CPU %.3f ms/call (whole step %.3f), RSS/active call %.1f KiB (PSS %.1f), %d/%d calls failed (%s; uas failed %d; sipp exit %d), INVITE->200 %.1f ms, steady state: %s\n",
			$1, $2, $4, $10, $11, $14, $15, $20, $18, $22, $21, $23, $24, $27 }'
	if [ "$target" = kamailio ]; then
		grep -ciE 'error|no more|out of memory' "$dir/kamailio.log" >"$dir/log-errors.count" || true
	else
		grep -c '"level":"error"' "$dir/tollgate.log" >"$dir/log-errors.count" || true
	fi
	sleep 2
}

run_compare() {
	local target dur ch
	# The profile is taken in the longest call duration's step.
	PROFILE_DURATION=$(echo "$DURATIONS" | tr ' ' '\n' | sort -n | tail -1)
	PROFILE_NOTE=
	echo "bench: compare mode, $RATE calls/s, call durations ${DURATIONS} ms, ${STEADY_SECONDS}s steady-state window; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg); output in $OUT"
	echo "$RESULTS_HEADER" >"$OUT/results.tsv"
	for target in $TARGETS; do
		for dur in $DURATIONS; do
			if [ "$target" = kamailio ]; then
				for ch in $KAMAILIO_CHILDREN; do
					compare_step kamailio "kamailio-${ch}w" "$ch" "$dur"
				done
			else
				compare_step "$target" "$target" 1 "$dur"
			fi
		done
	done
	compare_table "$OUT/results.tsv" | tee "$OUT/summary.md"
}

# compare_table RESULTS: the Markdown table and the ratios.
compare_table() {
	echo
	echo "## compare: $RATE calls/s, one tenant, $(nproc) CPUs, ${STEADY_SECONDS}s steady-state window"
	echo
	echo "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'), $(date -u +%F), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
	echo
	awk -F'\t' '
		NR == 1 {
			print "| target | call duration | concurrent calls | CPU ms/call (steady) | CPU ms/call (whole step) | proxy cores | idle RSS MiB | RSS MiB at memory sample | RSS/active call KiB | PSS/active call KiB | calls | failed | INVITE→200 ms mean / worst second | SIPp cores | other cores | steady state |"
			print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
			next
		}
		{
			conc = sprintf("%.0f", $4)
			if ($6 != "-") conc = conc sprintf(" (gateway: %s)", $6)
			failed = $20
			if ($22 != "-") failed = failed " (" $22 ")"
			if ($21 > 0) failed = failed ", uas " $21
			printf "| %s | %d s | %s | %.3f | %.3f | %.2f | %.1f | %.1f | %.1f | %.1f | %d | %s | %.1f / %.0f | %.2f | %s | %s |\n", $1, $2, conc, $10, $11, $16, $12, $13, $14, $15, $18, failed, $24, $25, $17, $28, $27
			if ($27 != "yes") unsteady[$1, $2] = 1
			cpu[$1, $2] = $10; rss[$1, $2] = $14; pss[$1, $2] = $15
			if (!($1 in seen)) { seen[$1] = 1; order[++nt] = $1 }
			if (!($2 in dseen)) { dseen[$2] = 1; durs[++nd] = $2 }
		}
		END {
			print ""
			print "Ratios (CPU: steady-state ms per call; memory: tollgate RSS per active call over Kamailio PSS per active call, and over its RSS sum):"
			print ""
			for (j = 1; j <= nd; j++) {
				d = durs[j]
				for (i = 1; i <= nt; i++) {
					k = order[i]
					if (k !~ /^kamailio/ || !(("tollgate" SUBSEP d) in cpu) || !((k SUBSEP d) in cpu)) continue
					rc = cpu[k, d] > 0 ? cpu["tollgate", d] / cpu[k, d] : 0
					rp = pss[k, d] > 0 ? rss["tollgate", d] / pss[k, d] : 0
					rr = rss[k, d] > 0 ? rss["tollgate", d] / rss[k, d] : 0
					note = ((("tollgate" SUBSEP d) in unsteady) || ((k SUBSEP d) in unsteady)) ? " (not a steady state: see the table)" : ""
					printf "- %d s calls, tollgate / %s: CPU %.2f, memory %.2f (over PSS) / %.2f (over RSS sum)%s\n", d, k, rc, rp, rr, note
				}
			}
			if (nd >= 2) {
				lo = durs[1]; hi = durs[nd]
				for (i = 1; i <= nt; i++) {
					k = order[i]
					if ((k SUBSEP lo) in cpu && (k SUBSEP hi) in cpu && cpu[k, lo] > 0)
						printf "- %s: CPU per call %d s / %d s calls = %.2f%s\n", k, hi, lo, cpu[k, hi] / cpu[k, lo], (((k SUBSEP lo) in unsteady) || ((k SUBSEP hi) in unsteady)) ? " (not a steady state: see the table)" : ""
				}
			}
		}' "$1"
}

# MODE=report: the table again from a compare run's raw files (after a
# change to the analysis).
run_report() {
	local d
	# shellcheck disable=SC1091
	RATE=$(. "$(head -1 "$OUT/steps.txt")/step.env" && echo "$rate")
	# shellcheck disable=SC1091
	STEADY_SECONDS=$(. "$(head -1 "$OUT/steps.txt")/step.env" && echo "$steady")
	echo "$RESULTS_HEADER" >"$OUT/results.tsv"
	while read -r d; do
		step_row "$d" >>"$OUT/results.tsv"
	done <"$OUT/steps.txt"
	compare_table "$OUT/results.tsv" | tee "$OUT/summary.md"
}

case $MODE in
rates) run_rates ;;
compare) run_compare ;;
report) run_report ;;
esac
