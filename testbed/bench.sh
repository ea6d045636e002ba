#!/usr/bin/env bash
# Load benchmark: SIPp calls through the gateway at rising rates.
#
#   testbed/bench.sh                      # tollgate (run by `make bench`)
#   TARGET=kamailio testbed/bench.sh      # Kamailio with testbed/kamailio/kamailio.cfg
#
# Parties on loopback, as in configs/tollgate.yaml: SIPp uas is the carrier
# (127.0.0.2), SIPp uac the tenant's PBX (127.0.0.10), the proxy under test
# listens on 127.0.0.1 (UDP). Every call: INVITE, 180, 200, ACK, BYE, 200
# (SIPp's built-in uac with -d 0).
#
# Per rate it records calls attempted, successful and failed, and the CPU
# time (utime+stime from /proc/PID/stat, the process and its children
# summed, divided by CLK_TCK) the proxy spent during the step. It prints a
# table, the highest rate with < 0.1 % failed calls (that also reached 95 %
# of its target rate), and the CPU per call at 500 calls/s.
#
# Environment:
#   TARGET        tollgate (default) | kamailio
#   PERSIST       on (default: Badger in $OUT/data, fsync per group commit) |
#                 off (in-memory store): tollgate only
#   RATES         calls/s per step (default "200 400 500 600 800 1000 1200 1500 2000")
#   STEP_SECONDS  seconds of calls per step (default 15)
#   PORT_BASE     proxy on 127.0.0.1:PORT_BASE, uac on 127.0.0.10:PORT_BASE+1,
#                 uas on 127.0.0.2:PORT_BASE+2 (default 25060)
#   KAMAILIO_CHILDREN  Kamailio UDP worker processes (default 4)
#   OUT           directory for configs, logs and SIPp stats
#                 (default testbed/results/<target>-<timestamp>)
#
# Not run by CI: it takes a few minutes and wants an otherwise idle machine.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

TARGET=${TARGET:-tollgate}
PERSIST=${PERSIST:-on}
RATES=${RATES:-"200 400 500 600 800 1000 1200 1500 2000"}
STEP_SECONDS=${STEP_SECONDS:-15}
PORT_BASE=${PORT_BASE:-25060}
GW_PORT=$PORT_BASE
UAC_PORT=$((PORT_BASE + 1))
UAS_PORT=$((PORT_BASE + 2))
OUT=${OUT:-$ROOT/testbed/results/$TARGET-$(date -u +%Y%m%dT%H%M%SZ)}
CLK_TCK=$(getconf CLK_TCK)

command -v sipp >/dev/null || { echo "bench: sipp not found (Debian/Ubuntu package sip-tester)" >&2; exit 1; }
mkdir -p "$OUT"

PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# cpu_ticks PID: utime+stime of PID and all its descendants, in clock ticks.
cpu_ticks() {
	local root=$1
	awk -v root="$root" '
		{
			# Fields after the "(comm)" part, which may contain spaces.
			line = $0
			sub(/^.*\) /, "", line)
			n = split(line, f, " ")
			pid = FILENAME; sub(/^\/proc\//, "", pid); sub(/\/stat$/, "", pid)
			ppid[pid] = f[2]        # field 4
			ticks[pid] = f[12] + f[13] # fields 14 (utime) and 15 (stime)
		}
		END {
			keep[root] = 1
			changed = 1
			while (changed) {
				changed = 0
				for (p in ppid) if (!(p in keep) && (ppid[p] in keep)) { keep[p] = 1; changed = 1 }
			}
			t = 0
			for (p in keep) t += ticks[p]
			print t
		}' /proc/[0-9]*/stat 2>/dev/null
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

# udp_listening IP PORT: something is bound to IP:PORT (UDP).
udp_listening() {
	ss -Huln "src $1:$2" 2>/dev/null | grep -q .
}

wait_listening() {
	local i
	for i in $(seq 1 100); do
		if udp_listening "$1" "$2"; then
			return 0
		fi
		sleep 0.1
	done
	echo "bench: nothing listening on $1:$2 after 10s" >&2
	exit 1
}

for p in "127.0.0.1 $GW_PORT" "127.0.0.2 $UAS_PORT" "127.0.0.10 $UAC_PORT"; do
	# shellcheck disable=SC2086
	if udp_listening $p; then
		echo "bench: UDP ${p// /:} already in use; set PORT_BASE" >&2
		exit 1
	fi
done

# --- the proxy under test ---------------------------------------------------
case $TARGET in
tollgate)
	echo "bench: building bin/tollgate"
	if [ "$PERSIST" = on ]; then DATA_DIR=$OUT/data; else DATA_DIR=":memory:"; fi
	go build -o bin/tollgate ./cmd/tollgate
	cat >"$OUT/tollgate-bench.yaml" <<EOF
# written by testbed/bench.sh
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
  data_dir: "$DATA_DIR"
api:
  listen: "off"
EOF
	bin/tollgate serve -c "$OUT/tollgate-bench.yaml" 2>"$OUT/tollgate.log" &
	PROXY_PID=$!
	PIDS+=("$PROXY_PID")
	PROXY_DESC="tollgate $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?') (go build, log level warn, max_parallel_calls -1, persistence $PERSIST)"
	;;
kamailio)
	KAMAILIO=${KAMAILIO:-$(command -v kamailio || echo /usr/sbin/kamailio)}
	[ -x "$KAMAILIO" ] || { echo "bench: kamailio not found (apt-get install kamailio)" >&2; exit 1; }
	KCFG=$ROOT/testbed/kamailio/kamailio.cfg
	KDEFS=(-A "GW_PORT=$GW_PORT" -A "UAS_PORT=$UAS_PORT" -A "CHILDREN=${KAMAILIO_CHILDREN:-4}")
	"$KAMAILIO" -c -f "$KCFG" "${KDEFS[@]}" >"$OUT/kamailio-check.log" 2>&1 ||
		{ cat "$OUT/kamailio-check.log" >&2; exit 1; }
	# -DD: stay in the foreground (no daemon), children still forked; -E: log to stderr.
	"$KAMAILIO" -DD -E -f "$KCFG" "${KDEFS[@]}" \
		-P "$OUT/kamailio.pid" -Y "$OUT" -m 512 -M 32 2>"$OUT/kamailio.log" &
	PROXY_PID=$!
	PIDS+=("$PROXY_PID")
	PROXY_DESC="$("$KAMAILIO" -v 2>/dev/null | head -1 | sed 's/^version: //') (testbed/kamailio/kamailio.cfg, ${KAMAILIO_CHILDREN:-4} UDP workers)"
	;;
*)
	echo "bench: unknown TARGET $TARGET (tollgate | kamailio)" >&2
	exit 2
	;;
esac
wait_listening 127.0.0.1 "$GW_PORT"

# --- the carrier: SIPp uas ----------------------------------------------------
sipp -sn uas -i 127.0.0.2 -p "$UAS_PORT" -mi 127.0.0.2 -mp 26000 \
	-nostdin -buff_size 4194304 -max_recv_loops 5000 -max_sched_loops 5000 \
	>"$OUT/uas.screen" 2>&1 &
UAS_PID=$!
PIDS+=("$UAS_PID")
wait_listening 127.0.0.2 "$UAS_PORT"

echo "bench: $PROXY_DESC on 127.0.0.1:$GW_PORT; $(nproc) CPUs; ${STEP_SECONDS}s per step; output in $OUT"

RESULTS=$OUT/results.tsv
printf 'rate\tattempted\tsuccessful\tfailed\tfailed_pct\tachieved_cps\tcpu_s\tcpu_ms_per_call\tsipp_cpu_s\n' >"$RESULTS"

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
	sipp -sn uac -i 127.0.0.10 -p "$UAC_PORT" -mi 127.0.0.10 -mp 26100 -s 15550001 \
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
