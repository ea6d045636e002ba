#!/usr/bin/env bash
# Flood benchmark (issue 9): what a flood costs the proxy, and how much of
# one the tenant's calls survive. tollgate and then Kamailio, in one run.
#
#   testbed/flood.sh                          # both phases, both targets (~15 min)
#   PHASES=cost TARGETS=tollgate testbed/flood.sh
#   RATES="5000 20000" FLOOD_SECONDS=5 testbed/flood.sh    # a quick run
#   MODE=report OUT=testbed/results/flood-<time> testbed/flood.sh
#
# The run happens in a network namespace of its own with only loopback
# (unshare --net; NETNS=0 runs on the host's loopback instead): the flood
# never meets anyone else's sockets, the ports are private, and the UDP
# counters of /proc/net/snmp are the run's own. Parties as in bench.sh:
# the proxy on 127.0.0.1:PORT_BASE (UDP), SIPp uas (the carrier) on
# 127.0.0.2, SIPp uac (the tenant's PBX) on 127.0.0.10; the flooder
# (testbed/cmd/flooder, go build) sends INVITEs from other 127.x.y.z
# addresses, paced by a 1 ms ticker, and counts every response.
#
# Phase "cost": CPU per rejected INVITE, as a fraction of an admitted
# call's CPU, measured on the same proxy process:
#   idle       the proxy at rest for IDLE_SECONDS: its idle CPU rate;
#   call       SIPp's uac places CALL_RATE calls/s (-d 0: INVITE, 180, 200,
#              ACK, BYE, 200) for CALL_SECONDS: proxy CPU per successful
#              call (the admitted call);
#   unknown    a flood from ONE unknown source the proxy answers 403
#              every time: tollgate with sip.flood's limits raised out of
#              reach (rate and unknown_rate 1000000, bursts 10000000), so
#              it never blocks; Kamailio's plain config (sl_send_reply 403);
#   blocked    a flood from one unknown source, default sip.flood: the
#              first unknown_burst (10) requests get 403, the rest are
#              dropped; Kamailio with -A WITH_PIKE (pike at 5/s, over it
#              dropped);
#   spread     the same INVITE rate from rate/SPREAD_PER_SOURCE sources
#              (default 2.5/s each, half of unknown_rate: none is ever
#              blocked), default sip.flood / Kamailio WITH_PIKE: the
#              403 path a spoofed-source flood forces on a pike-style
#              limiter, with the per-source tables working.
# Each flood runs FLOOD_SECONDS at each rate of RATES (a fresh source
# address per step); CPU is the proxy's utime+stime (its process tree,
# /proc/PID/stat) from just before the flooder starts until it exits
# (the flood, plus 1 s of linger for the backlog and the responses), over
# the requests sent. "net" subtracts the idle rate over the same window.
# The admitted call's CPU is over its step likewise. The ratio is
# net µs per request / net µs per call.
#
# Phase "capacity": a flood at each rate of CAPACITY_RATES in turn (a
# fresh proxy per step), in each of CAPACITY_SCENARIOS (blocked: default
# sip.flood, one source; unknown: one source answered 403 every time, as
# above), lasting TENANT_SECONDS + 4 s; 1 s into it the tenant starts
# placing TENANT_RATE calls/s (SIPp uac, each held TENANT_HOLD_MS) for
# TENANT_SECONDS, so every call is under the flood. A step holds if at
# least 99 % of the tenant's calls succeed. Per target and scenario the
# report gives the last rate that held before the first that failed; the
# rates above that are not tried (CAPACITY_ALL=1 tries them all). The
# flooder itself tops out on this machine (one core, shared with the
# proxy and SIPp): the achieved rate is what counts, and it is reported.
# Here the flooder does not read the responses (-noread; CAPACITY_READ=1
# reads and counts them): on loopback every 403 wakes the flooder's
# reader, which then competes with the gateway for the same 2 cores, and
# preempts its sending thread inside sendto; a real attacker's responses
# go to another machine (or to a spoofed victim). tollgate's own count of
# the 403s it sent is in the table.
#
# "other cores": CPU used during the step by processes this script did
# not start (another engineer's build or tests), from /proc/*/stat as in
# bench.sh. A step above OTHER_MAX (0.10) cores is run again, up to
# RETRIES (2) more times, and the quietest attempt is kept; the row says
# how many attempts it took and what the others used.
#
# Loopback caveat: a datagram sent over lo is received (IP, UDP, socket
# queue) in the sender's system call, so the kernel's receive path is
# charged to the flooder, not to the proxy; only the proxy's own reads,
# parsing, decisions and writes are in its CPU. The same holds for both
# targets, so the ratio is fair; on a NIC the receive softirq would add
# the same per-packet cost to both.
#
# Environment (defaults in brackets):
#   PHASES [cost capacity]   TARGETS [tollgate kamailio]
#   RATES [2000 5000 10000 20000]   FLOOD_SECONDS [10]
#   SCENARIOS [unknown blocked spread]   SPREAD_PER_SOURCE [2.5]
#   CALL_RATE [100]   CALL_SECONDS [20]   IDLE_SECONDS [5]
#   CAPACITY_RATES [5000 10000 20000 30000 35000 40000 60000 80000 100000 120000 160000]
#   CAPACITY_SCENARIOS [blocked unknown]   CAPACITY_ALL [0]   CAPACITY_READ [0]
#   TENANT_RATE [50]   TENANT_SECONDS [10]   TENANT_HOLD_MS [1000]
#   PERSIST [on]: tollgate's store (Badger with fsync) | off (in memory)
#   KAMAILIO_CHILDREN [4]   OTHER_MAX [0.10]   RETRIES [2]
#   PORT_BASE [26060]: proxy PORT_BASE, uac +1, uas +2, tollgate API +3
#   NETNS [1]   OUT [testbed/results/flood-<time>]
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

MODE=${MODE:-run}
NETNS=${NETNS:-1}
if [ "$MODE" = run ] && [ "$NETNS" = 1 ] && [ -z "${FLOOD_IN_NETNS:-}" ]; then
	if ! unshare --net true 2>/dev/null; then
		echo "flood: cannot create a network namespace (unshare --net: needs root or CAP_SYS_ADMIN); NETNS=0 runs on the host's loopback" >&2
		exit 1
	fi
	exec unshare --net env FLOOD_IN_NETNS=1 "$0" "$@"
fi
if [ -n "${FLOOD_IN_NETNS:-}" ]; then
	ip link set lo up
fi

PHASES=${PHASES:-"cost capacity"}
TARGETS=${TARGETS:-"tollgate kamailio"}
RATES=${RATES:-"2000 5000 10000 20000"}
FLOOD_SECONDS=${FLOOD_SECONDS:-10}
SCENARIOS=${SCENARIOS:-"unknown blocked spread"}
SPREAD_PER_SOURCE=${SPREAD_PER_SOURCE:-2.5}
CALL_RATE=${CALL_RATE:-100}
CALL_SECONDS=${CALL_SECONDS:-20}
IDLE_SECONDS=${IDLE_SECONDS:-5}
CAPACITY_RATES=${CAPACITY_RATES:-"5000 10000 20000 30000 35000 40000 60000 80000 100000 120000 160000"}
CAPACITY_SCENARIOS=${CAPACITY_SCENARIOS:-"blocked unknown"}
CAPACITY_ALL=${CAPACITY_ALL:-0}
CAPACITY_READ=${CAPACITY_READ:-0}
TENANT_RATE=${TENANT_RATE:-50}
TENANT_SECONDS=${TENANT_SECONDS:-10}
TENANT_HOLD_MS=${TENANT_HOLD_MS:-1000}
PERSIST=${PERSIST:-on}
KAMAILIO_CHILDREN=${KAMAILIO_CHILDREN:-4}
OTHER_MAX=${OTHER_MAX:-0.10}
RETRIES=${RETRIES:-2}
PORT_BASE=${PORT_BASE:-26060}
GW_PORT=$PORT_BASE
UAC_PORT=$((PORT_BASE + 1))
UAS_PORT=$((PORT_BASE + 2))
API_PORT=$((PORT_BASE + 3))
UAS_MEDIA_PORT=$((PORT_BASE + 940))
UAC_MEDIA_PORT=$((PORT_BASE + 1040))
CLK_TCK=$(getconf CLK_TCK)
OUT=${OUT:-$ROOT/testbed/results/flood-$(date -u +%Y%m%dT%H%M%SZ)}

case $MODE in run | report) ;; *)
	echo "flood: unknown MODE $MODE (run | report)" >&2
	exit 2
	;;
esac
if [ "$MODE" = report ] && [ ! -d "$OUT" ]; then
	echo "flood: MODE=report needs OUT=<a run's directory>" >&2
	exit 2
fi
mkdir -p "$OUT"

NAME=flood
# shellcheck source=testbed/lib.sh
. "$ROOT/testbed/lib.sh"

# udp_drops: "PROXY ALL": receive-buffer drops of the proxy's socket
# (127.0.0.1:GW_PORT, /proc/net/udp's drops column; Kamailio's workers
# share one socket) and of every UDP socket (Udp RcvbufErrors of
# /proc/net/snmp: this namespace's, or the host's with NETNS=0; the
# flooder's own socket included).
udp_drops() {
	local port
	port=$(printf '0100007F:%04X' "$GW_PORT")
	{ cat /proc/net/udp; echo "--"; cat /proc/net/snmp; } | awk -v port="$port" '
		$1 == "--" { snmp = 1; next }
		!snmp && $2 == port { proxy += $NF }
		snmp && $1 == "Udp:" { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i; h = 1; next } all = $c["RcvbufErrors"] }
		END { print proxy + 0, all + 0 }'
}

# delta "A0 B0" "A1 B1": "A1-A0 B1-B0".
delta() {
	awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); print y[1] - x[1], y[2] - x[2] }'
}

# metric NAME FILE: a series' value in a /metrics scrape (0 when absent).
metric() {
	awk -v n="$1" '$1 == n { v = $2 } END { print v + 0 }' "$2" 2>/dev/null || echo 0
}

# scrape FILE: tollgate's /metrics into FILE (empty for Kamailio).
scrape() {
	if [ "$PROXY_TARGET" = tollgate ]; then
		curl -fsS --max-time 10 -o "$1" "http://127.0.0.1:$API_PORT/metrics" 2>/dev/null || : >"$1"
	else
		: >"$1"
	fi
}

# --- proxies ------------------------------------------------------------------

BUILT=
build() {
	if [ -z "$BUILT" ]; then
		echo "flood: building bin/tollgate and bin/flooder"
		go build -o bin/tollgate ./cmd/tollgate
		go build -o bin/flooder ./testbed/cmd/flooder
		BUILT=1
	fi
}

# tollgate_config FILE DATA_DIR FLOOD: FLOOD is "default" (no sip.flood:
# the defaults) or "open" (limits out of reach: unknown sources always get
# their 403).
tollgate_config() {
	local file=$1 data_dir=$2 flood=$3
	{
		cat <<EOF
# written by testbed/flood.sh (sip.flood: $flood)
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
EOF
		if [ "$flood" = open ]; then
			cat <<EOF
  flood:
    rate: 1000000
    burst: 10000000
    unknown_rate: 1000000
    unknown_burst: 10000000
EOF
		fi
		cat <<EOF
media:
  mode: off # signalling only, as the Kamailio it is compared with
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
  sync: true
api:
  listen: 127.0.0.1:$API_PORT
EOF
	} >"$file"
}

# start_proxy TARGET DIR FLOOD: FLOOD "default" (tollgate's defaults /
# Kamailio WITH_PIKE) or "open" (tollgate's limits raised / Kamailio's
# plain config). Sets PROXY_PID, PROXY_TARGET, PROXY_DESC; starts the uas.
start_proxy() {
	local target=$1 dir=$2 flood=$3 data_dir
	mkdir -p "$dir"
	PROXY_TARGET=$target
	case $target in
	tollgate)
		if [ "$PERSIST" = on ]; then data_dir=$dir/data; else data_dir=":memory:"; fi
		tollgate_config "$dir/tollgate.yaml" "$data_dir" "$flood"
		bin/tollgate serve -c "$dir/tollgate.yaml" 2>"$dir/tollgate.log" &
		PROXY_PID=$!
		PROXY_DESC="tollgate $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?') (sip.flood $flood, persistence $PERSIST)"
		;;
	kamailio)
		KAMAILIO=${KAMAILIO:-$(command -v kamailio || echo /usr/sbin/kamailio)}
		[ -x "$KAMAILIO" ] || { echo "flood: kamailio not found (apt-get install kamailio)" >&2; exit 1; }
		local kcfg=$ROOT/testbed/kamailio/kamailio.cfg
		local kdefs=(-A "GW_PORT=$GW_PORT" -A "UAS_PORT=$UAS_PORT" -A "CHILDREN=$KAMAILIO_CHILDREN")
		if [ "$flood" = default ]; then kdefs+=(-A WITH_PIKE); fi
		"$KAMAILIO" -c -f "$kcfg" "${kdefs[@]}" >"$dir/kamailio-check.log" 2>&1 ||
			{ cat "$dir/kamailio-check.log" >&2; exit 1; }
		"$KAMAILIO" -DD -E -f "$kcfg" "${kdefs[@]}" -P "$dir/kamailio.pid" -Y "$dir" -m 512 -M 32 >"$dir/kamailio.log" 2>&1 &
		PROXY_PID=$!
		PROXY_DESC="$("$KAMAILIO" -v 2>/dev/null | head -1 | sed 's/^version: //') ($KAMAILIO_CHILDREN UDP workers, $([ "$flood" = default ] && echo "pike 5/s" || echo "no pike"))"
		;;
	esac
	PIDS+=("$PROXY_PID")
	wait_listening 127.0.0.1 "$GW_PORT"
	sipp -sn uas -i 127.0.0.2 -p "$UAS_PORT" -mi 127.0.0.2 -mp "$UAS_MEDIA_PORT" \
		-nostdin -buff_size 8388608 -max_recv_loops 5000 -max_sched_loops 5000 \
		-trace_stat -stf "$dir/uas.csv" -fd 1 >"$dir/uas.screen" 2>&1 &
	UAS_PID=$!
	PIDS+=("$UAS_PID")
	wait_listening 127.0.0.2 "$UAS_PORT"
	sleep 1
}

stop_proxy() {
	stop_pid "$UAS_PID"
	kill -0 "$PROXY_PID" 2>/dev/null || echo "flood: the proxy died; see its log" >&2
	stop_pid "$PROXY_PID"
}

# Flooding sources: a fresh address per step (from 127.1.0.1), or for a
# spread flood a fresh block of consecutive ones (from 127.16.0.1); the
# flooder counts up from the first. SRC_N numbers the addresses used.
SRC_N=0
SPREAD_N=1

# pick_sources RATE SCENARIO: sets FLOOD_SRC (the first source address)
# and FLOOD_N (how many) for the next flood.
pick_sources() {
	local rate=$1 scenario=$2
	FLOOD_N=1
	if [ "$scenario" = spread ]; then
		FLOOD_N=$(awk -v r="$rate" -v p="$SPREAD_PER_SOURCE" 'BEGIN { n = int(r / p); if (n * p < r) n++; print n }')
		FLOOD_SRC="127.$((16 + SPREAD_N / 65536)).$(((SPREAD_N / 256) % 256)).$((SPREAD_N % 256))"
		SPREAD_N=$((SPREAD_N + FLOOD_N))
	else
		SRC_N=$((SRC_N + 1))
		FLOOD_SRC="127.1.$((SRC_N / 250)).$((SRC_N % 250 + 1))"
	fi
}

# flooder RATE SECONDS JSON [FLAGS...]: runs the flooder from
# pick_sources' addresses.
flooder() {
	local rate=$1 secs=$2 json=$3
	shift 3
	bin/flooder -target "127.0.0.1:$GW_PORT" -rate "$rate" -duration "${secs}s" \
		-source "$FLOOD_SRC" -sources "$FLOOD_N" -linger 1s "$@" >"$json"
}

# flood_cmd RATE SCENARIO JSON: a flood of FLOOD_SECONDS from fresh sources.
flood_cmd() {
	pick_sources "$1" "$2"
	flooder "$1" "$FLOOD_SECONDS" "$3"
}

# --- phase cost ---------------------------------------------------------------

COST_HEADER=$(printf 'target\tscenario\trate\tsent\tachieved\telapsed_s\tproxy_ticks\twindow_s\tanswered\tgateway_refused_403\tgateway_dropped\tproxy_socket_drops\tother_cores\tattempts\tsources\tall_udp_drops')

# measure_flood SCENARIO RATE DIR: one flood step on the running proxy,
# retried while other processes are busy; appends a row to cost.tsv.
measure_flood() {
	local scenario=$1 rate=$2 dir=$3 attempt best="" best_other=""
	for attempt in $(seq 1 $((RETRIES + 1))); do
		local json=$dir/flood-$scenario-$rate-$attempt.json t0 t1 p0 p1 k0 k1 o0 o1 row other
		scrape "$dir/m0.txt"
		rm -f "$dir/.others"
		o0=$(others_ticks "$dir/.others")
		k0=$(udp_drops)
		p0=$(cpu_ticks "$PROXY_PID")
		t0=$(now)
		flood_cmd "$rate" "$scenario" "$json"
		p1=$(cpu_ticks "$PROXY_PID")
		t1=$(now)
		k1=$(udp_drops)
		o1=$(others_ticks "$dir/.others")
		scrape "$dir/m1.txt"
		local r0 r1 d0 d1
		r0=$(metric 'tollgate_sip_refused_total{cause="unknown_source"}' "$dir/m0.txt")
		r1=$(metric 'tollgate_sip_refused_total{cause="unknown_source"}' "$dir/m1.txt")
		d0=$(metric tollgate_flood_dropped_total "$dir/m0.txt")
		d1=$(metric tollgate_flood_dropped_total "$dir/m1.txt")
		row=$(jq -r --arg t "$PROXY_TARGET" --arg s "$scenario" --argjson rate "$rate" \
			--argjson p "$((p1 - p0))" --arg w "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
			--arg rr "$([ "$PROXY_TARGET" = tollgate ] && awk -v a="$r0" -v b="$r1" 'BEGIN { print b - a }' || echo -)" \
			--arg dd "$([ "$PROXY_TARGET" = tollgate ] && awk -v a="$d0" -v b="$d1" 'BEGIN { print b - a }' || echo -)" \
			--argjson k "$(delta "$k0" "$k1" | cut -d' ' -f1)" --argjson ka "$(delta "$k0" "$k1" | cut -d' ' -f2)" --arg o "$(awk -v a="$o0" -v b="$o1" -v w="$t0" -v x="$t1" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / hz / (x - w) }')" \
			--argjson n "$attempt" \
			'[$t, $s, $rate, .sent, (.achieved_rate | floor), (.elapsed_s * 1000 | floor) / 1000, $p, $w, .responses, $rr, $dd, $k, $o, $n, .sources, $ka] | @tsv' "$json")
		other=$(echo "$row" | cut -f13)
		if [ -z "$best" ] || awk -v a="$other" -v b="$best_other" 'BEGIN { exit !(a < b) }'; then
			best=$row
			best_other=$other
		fi
		echo "$row" | awk -F'\t' -v hz="$CLK_TCK" '{ printf "flood: %s %s %6d/s: sent %d (%d/s), proxy CPU %.2f s = %.1f us/request, answered %d, drops: proxy socket %d, all UDP %d, other cores %.2f (attempt %d)\n", $1, $2, $3, $4, $5, $7 / hz, 1e6 * $7 / hz / $4, $9, $12, $16, $13, $14 }'
		if awk -v a="$other" -v m="$OTHER_MAX" 'BEGIN { exit !(a <= m) }'; then break; fi
		sleep 2
	done
	echo "$best" >>"$OUT/cost.tsv"
	sleep 1
}

# measure_idle DIR: the proxy's idle CPU rate; appends a row to cost.tsv.
measure_idle() {
	local dir=$1 p0 p1 t0 t1 o0 o1
	rm -f "$dir/.others"
	o0=$(others_ticks "$dir/.others")
	p0=$(cpu_ticks "$PROXY_PID")
	t0=$(now)
	sleep "$IDLE_SECONDS"
	p1=$(cpu_ticks "$PROXY_PID")
	t1=$(now)
	o1=$(others_ticks "$dir/.others")
	awk -v t="$PROXY_TARGET" -v p="$((p1 - p0))" -v a="$t0" -v b="$t1" -v o0="$o0" -v o1="$o1" -v hz="$CLK_TCK" \
		'BEGIN { printf "%s\tidle\t0\t0\t0\t0\t%d\t%.3f\t0\t-\t-\t0\t%.3f\t1\t0\t0\n", t, p, b - a, (o1 - o0) / hz / (b - a) }' >>"$OUT/cost.tsv"
	tail -1 "$OUT/cost.tsv" | awk -F'\t' -v hz="$CLK_TCK" '{ printf "flood: %s idle: %.3f cores\n", $1, $7 / hz / $8 }'
}

# measure_calls DIR: CALL_RATE admitted calls/s for CALL_SECONDS; appends a
# row to cost.tsv (sent = successful calls).
measure_calls() {
	local dir=$1 attempt best="" best_other=""
	for attempt in $(seq 1 $((RETRIES + 1))); do
		local stf=$dir/calls-$attempt.csv p0 p1 t0 t1 o0 o1 row other ok placed
		rm -f "$dir/.others" "$stf"
		o0=$(others_ticks "$dir/.others")
		p0=$(cpu_ticks "$PROXY_PID")
		t0=$(now)
		sipp -sn uac -i 127.0.0.10 -p "$UAC_PORT" -mi 127.0.0.10 -mp "$UAC_MEDIA_PORT" -s 15550001 \
			"127.0.0.1:$GW_PORT" -r "$CALL_RATE" -m "$((CALL_RATE * CALL_SECONDS))" -l 10000 -d 0 \
			-nostdin -buff_size 8388608 -recv_timeout 10000 -timeout "$((CALL_SECONDS + 20))s" \
			-trace_stat -stf "$stf" -fd 1 >"$dir/calls-$attempt.screen" 2>&1 || true
		p1=$(cpu_ticks "$PROXY_PID")
		t1=$(now)
		o1=$(others_ticks "$dir/.others")
		read -r placed ok <<<"$(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next } { l = $0 } END { split(l, v, ";"); print v[c["OutgoingCall(C)"]] + 0, v[c["SuccessfulCall(C)"]] + 0 }' "$stf")"
		row=$(awk -v t="$PROXY_TARGET" -v r="$CALL_RATE" -v ok="$ok" -v placed="$placed" -v p="$((p1 - p0))" -v a="$t0" -v b="$t1" \
			-v o0="$o0" -v o1="$o1" -v hz="$CLK_TCK" -v n="$attempt" \
			'BEGIN { printf "%s\tcall\t%d\t%d\t%d\t%.3f\t%d\t%.3f\t%d\t-\t-\t0\t%.3f\t%d\t1\t0\n", t, r, ok, ok / (b - a), b - a, p, b - a, placed, (o1 - o0) / hz / (b - a), n }')
		other=$(echo "$row" | cut -f13)
		if [ -z "$best" ] || awk -v a="$other" -v b="$best_other" 'BEGIN { exit !(a < b) }'; then
			best=$row
			best_other=$other
		fi
		echo "$row" | awk -F'\t' -v hz="$CLK_TCK" '{ printf "flood: %s admitted calls at %d/s: %d of %d successful, proxy CPU %.2f s = %.3f ms/call, other cores %.2f (attempt %d)\n", $1, $3, $4, $9, $7 / hz, 1000 * $7 / hz / $4, $13, $14 }'
		if awk -v a="$other" -v m="$OTHER_MAX" 'BEGIN { exit !(a <= m) }'; then break; fi
		sleep 2
	done
	echo "$best" >>"$OUT/cost.tsv"
	sleep 2
}

run_cost() {
	local target scenario rate dir
	echo "$COST_HEADER" >"$OUT/cost.tsv"
	for target in $TARGETS; do
		dir=$OUT/cost-$target-open
		start_proxy "$target" "$dir" open
		echo "flood: cost: $PROXY_DESC; files in $dir"
		measure_idle "$dir"
		measure_calls "$dir"
		if [[ " $SCENARIOS " == *" unknown "* ]]; then
			for rate in $RATES; do measure_flood unknown "$rate" "$dir"; done
		fi
		stop_proxy
		dir=$OUT/cost-$target-default
		start_proxy "$target" "$dir" default
		echo "flood: cost: $PROXY_DESC; files in $dir"
		measure_idle "$dir"
		for scenario in blocked spread; do
			[[ " $SCENARIOS " == *" $scenario "* ]] || continue
			for rate in $RATES; do measure_flood "$scenario" "$rate" "$dir"; done
		done
		stop_proxy
	done
	cost_table "$OUT/cost.tsv" | tee -a "$OUT/summary.md"
}

# cost_table COST_TSV: the Markdown table of the cost phase.
cost_table() {
	echo
	echo "## Cost of a rejected INVITE, $(nproc) CPUs, ${FLOOD_SECONDS:-?} s floods"
	echo
	awk -F'\t' -v hz="$CLK_TCK" '
		NR == 1 { next }
		# Per target and config, the idle rate of the proxy the rows after it ran on.
		$2 == "idle" { idle[$1] = $7 / hz / $8; next }
		$2 == "call" {
			cpu = $7 / hz; net = cpu - idle[$1] * $8
			call[$1] = 1e6 * net / $4; rawcall[$1] = 1e6 * cpu / $4
			printf "%s admitted call: %d of %d calls at %d/s, proxy CPU %.2f s (idle %.4f cores), **%.0f µs/call** (net of idle; raw %.0f), other cores %.2f\n\n", $1, $4, $9, $3, cpu, idle[$1], call[$1], rawcall[$1], $13
			next
		}
		{ row[++n] = $0; idl[n] = idle[$1] }
		END {
			print "| target | scenario | rate asked | achieved /s | sent | sources | responses | dropped by proxy | lost in proxy socket | proxy CPU s | µs/request | µs/request net of idle | of an admitted call | other cores | attempts |"
			print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
			for (i = 1; i <= n; i++) {
				split(row[i], f, "\t")
				cpu = f[7] / hz; net = cpu - idl[i] * f[8]
				us = 1e6 * cpu / f[4]; nus = 1e6 * net / f[4]
				frac = (f[1] in call && call[f[1]] > 0) ? sprintf("%.1f %%", 100 * nus / call[f[1]]) : "-"
				printf "| %s | %s | %d | %d | %d | %d | %d | %s | %d | %.2f | %.1f | %.1f | %s | %.2f | %d |\n", f[1], f[2], f[3], f[5], f[4], f[15], f[9], f[11], f[12], cpu, us, nus, frac, f[13], f[14]
				key = f[2] SUBSEP f[3]; if (f[1] == "tollgate") tg[key] = nus; else if (f[1] == "kamailio") km[key] = nus
				if (!(key in kseen)) { kseen[key] = 1; keys[++nk] = key }
			}
			hdr = 0
			for (j = 1; j <= nk; j++) {
				k = keys[j]
				if (!(k in tg) || !(k in km) || km[k] <= 0) continue
				if (!hdr) { print ""; print "tollgate / Kamailio, CPU per request (net of idle):"; print ""; hdr = 1 }
				split(k, kk, SUBSEP)
				printf "- %s at %d/s: %.2f\n", kk[1], kk[2], tg[k] / km[k]
			}
			if (("tollgate" in call) && ("kamailio" in call) && call["kamailio"] > 0)
				printf "- admitted call: %.2f\n", call["tollgate"] / call["kamailio"]
		}' "$1"
}

# --- phase capacity -----------------------------------------------------------

CAP_HEADER=$(printf 'target\tscenario\trate\tsent\tachieved\tanswered\tcalls\tsuccessful\tfailed\tsuccess_pct\tretransmissions\tinvite_200_ms\tproxy_cores\tproxy_socket_drops\tother_cores\tsipp_rc\tall_udp_drops\tgateway_refused_403')

# capacity_step TARGET SCENARIO RATE: one step on a fresh proxy; sets
# CAP_ROW (a capacity.tsv row) and returns 1 if the tenant fell below 99 %.
# The flood lasts TENANT_SECONDS + 4 s; the tenant starts 1 s into it, so
# every call it places (and holds) is under the flood. The proxy's CPU,
# the drops and the other processes' CPU are measured over the flood
# (from the flooder's start to its exit, 1 s of linger included); the
# tenant's outcome over all its calls.
capacity_step() {
	local target=$1 scenario=$2 rate=$3 dir flood calls stf json uac_pid flood_pid rc p0 p1 t0 t1 o0 o1 k0 k1 r0 r1
	dir=$OUT/capacity-$target-$scenario-$rate
	if [ "$scenario" = unknown ]; then flood=open; else flood=default; fi
	start_proxy "$target" "$dir" "$flood"
	calls=$((TENANT_RATE * TENANT_SECONDS))
	stf=$dir/tenant.csv
	json=$dir/flood.json
	pick_sources "$rate" "$scenario"
	scrape "$dir/m0.txt"
	rm -f "$dir/.others"
	o0=$(others_ticks "$dir/.others")
	k0=$(udp_drops)
	p0=$(cpu_ticks "$PROXY_PID")
	t0=$(now)
	local rflags=()
	if [ "$CAPACITY_READ" != 1 ]; then rflags=(-noread); fi
	flooder "$rate" "$((TENANT_SECONDS + 4))" "$json" "${rflags[@]}" &
	flood_pid=$!
	PIDS+=("$flood_pid")
	sleep 1
	sipp -sn uac -i 127.0.0.10 -p "$UAC_PORT" -mi 127.0.0.10 -mp "$UAC_MEDIA_PORT" -s 15550001 \
		"127.0.0.1:$GW_PORT" -r "$TENANT_RATE" -m "$calls" -l 10000 -d "$TENANT_HOLD_MS" \
		-nostdin -buff_size 8388608 -recv_timeout 10000 -timeout "$((TENANT_SECONDS + 30))s" \
		-trace_stat -stf "$stf" -fd 1 -trace_err -error_file "$dir/tenant_errors.log" >"$dir/tenant.screen" 2>&1 &
	uac_pid=$!
	PIDS+=("$uac_pid")
	wait "$flood_pid" || echo "flood: the flooder failed; see $json" >&2
	forget_pid "$flood_pid"
	p1=$(cpu_ticks "$PROXY_PID")
	t1=$(now)
	k1=$(udp_drops)
	o1=$(others_ticks "$dir/.others")
	scrape "$dir/m1.txt"
	set +e
	wait "$uac_pid"
	rc=$?
	set -e
	forget_pid "$uac_pid"
	stop_proxy
	r0=$(metric 'tollgate_sip_refused_total{cause="unknown_source"}' "$dir/m0.txt")
	r1=$(metric 'tollgate_sip_refused_total{cause="unknown_source"}' "$dir/m1.txt")
	local row
	row=$(awk -F';' -v t="$target" -v s="$scenario" -v r="$rate" -v calls="$calls" -v rc="$rc" \
		-v p="$((p1 - p0))" -v a="$t0" -v b="$t1" -v k="$(delta "$k0" "$k1")" -v o0="$o0" -v o1="$o1" -v hz="$CLK_TCK" \
		-v gw403="$([ "$target" = tollgate ] && awk -v a="$r0" -v b="$r1" 'BEGIN { print b - a }' || echo -)" \
		-v sent="$(jq .sent "$json")" -v ach="$(jq '.achieved_rate | floor' "$json")" -v ans="$(jq -r 'if .read then .responses else "-" end' "$json")" '
		function hms(v,   q) { split(v, q, ":"); return ((q[1] * 60 + q[2]) * 60 + q[3]) * 1000 + q[4] / 1000 }
		NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
		{ l = $0 }
		END {
			split(l, v, ";"); split(k, kk, " ")
			ok = v[c["SuccessfulCall(C)"]] + 0; failed = calls - ok
			printf "%s\t%s\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%.2f\t%d\t%.1f\t%.2f\t%d\t%.3f\t%d\t%d\t%s\n", t, s, r, sent, ach, ans, calls, ok, failed, 100 * ok / calls, \
				v[c["Retransmissions(C)"]], hms(v[c["ResponseTime1(C)"]]), p / hz / (b - a), kk[1], (o1 - o0) / hz / (b - a), rc, kk[2], gw403
		}' "$stf")
	CAP_ROW=$row
	echo "$row" | awk -F'\t' '{ printf "flood: capacity %s %s %6d/s (achieved %d/s): tenant %d/%d calls (%.2f %%), %d retransmissions, INVITE->200 %.1f ms; during the flood: proxy %.2f cores, drops: proxy socket %d, all UDP %d; other cores %.2f\n", $1, $2, $3, $5, $8, $7, $10, $11, $12, $13, $14, $17, $15 }'
	sleep 1
	awk -v p="$(echo "$row" | cut -f10)" 'BEGIN { exit !(p >= 99) }'
}

run_capacity() {
	local target scenario rate
	echo "$CAP_HEADER" >"$OUT/capacity.tsv"
	for target in $TARGETS; do
		for scenario in $CAPACITY_SCENARIOS; do
			for rate in $CAPACITY_RATES; do
				# A step that fails while other processes were busy is run
				# again (up to RETRIES more times): the busy machine, not
				# the flood, may have failed it.
				local attempt held=0
				for attempt in $(seq 1 $((RETRIES + 1))); do
					if capacity_step "$target" "$scenario" "$rate"; then held=1; fi
					if [ "$held" = 1 ] || awk -v a="$(echo "$CAP_ROW" | cut -f15)" -v m="$OTHER_MAX" 'BEGIN { exit !(a <= m) }'; then
						break
					fi
					echo "flood: other processes used more than $OTHER_MAX cores: running the step again"
				done
				echo "$CAP_ROW" >>"$OUT/capacity.tsv"
				if [ "$held" = 0 ] && [ "$CAPACITY_ALL" != 1 ]; then
					break
				fi
			done
		done
	done
	capacity_table "$OUT/capacity.tsv" | tee -a "$OUT/summary.md"
}

# capacity_table CAPACITY_TSV: the Markdown table and the highest holding rate.
capacity_table() {
	echo
	echo "## Tenant at ${TENANT_RATE} calls/s under a flood, $(nproc) CPUs"
	echo
	awk -F'\t' '
		NR == 1 {
			print "| target | scenario | flood rate asked | achieved /s | flood requests sent | 403s sent (gateway count) | responses read by the flooder | tenant calls | successful | success % | SIPp retransmissions | INVITE→200 ms mean | proxy cores during the flood | lost in proxy socket | other cores |"
			print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
			next
		}
		{
			printf "| %s | %s | %d | %d | %d | %s | %s | %d | %d | %.2f | %d | %.1f | %.2f | %d | %.2f |\n", $1, $2, $3, $5, $4, $18, $6, $7, $8, $10, $11, $12, $13, $14, $15
			k = $1 " " $2
			if (!(k in seen)) { seen[k] = 1; order[++n] = k }
			# In the order tried: the last rate that held before the first failure.
			if (k in fail) next
			if ($10 >= 99) { best[k] = $5; bestask[k] = $3 } else { fail[k] = $5; failask[k] = $3; failpct[k] = $10 }
		}
		END {
			print ""
			for (i = 1; i <= n; i++) {
				k = order[i]
				printf "- %s: the tenant holds >= 99 %% up to %s", k, (k in best) ? sprintf("%d/s achieved (asked %d/s)", best[k], bestask[k]) : "none of the rates tried"
				if (k in fail) printf "; %.2f %% at %d/s achieved (asked %d/s)", failpct[k], fail[k], failask[k]
				else printf "; no rate tried failed"
				print ""
			}
		}' "$1"
}

# --- main -----------------------------------------------------------------------

if [ "$MODE" = report ]; then
	[ -s "$OUT/cost.tsv" ] && cost_table "$OUT/cost.tsv"
	[ -s "$OUT/capacity.tsv" ] && capacity_table "$OUT/capacity.tsv"
	exit 0
fi

command -v sipp >/dev/null || { echo "flood: sipp not found (Debian/Ubuntu package sip-tester)" >&2; exit 1; }
command -v jq >/dev/null || { echo "flood: jq not found" >&2; exit 1; }
if [ "$NETNS" != 1 ]; then
	for p in "127.0.0.1 $GW_PORT" "127.0.0.2 $UAS_PORT" "127.0.0.10 $UAC_PORT"; do
		# shellcheck disable=SC2086
		if udp_listening $p; then
			echo "flood: UDP ${p// /:} already in use; set PORT_BASE" >&2
			exit 1
		fi
	done
fi
build
echo "flood: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $([ -n "${FLOOD_IN_NETNS:-}" ] && echo "in a private network namespace" || echo "on the host's loopback"); output in $OUT"
{
	echo "# testbed/flood.sh, $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'), $(date -u +%FT%TZ)"
	echo "PHASES=\"$PHASES\" TARGETS=\"$TARGETS\" RATES=\"$RATES\" FLOOD_SECONDS=$FLOOD_SECONDS SCENARIOS=\"$SCENARIOS\" CALL_RATE=$CALL_RATE CALL_SECONDS=$CALL_SECONDS"
	echo "CAPACITY_RATES=\"$CAPACITY_RATES\" CAPACITY_SCENARIOS=\"$CAPACITY_SCENARIOS\" CAPACITY_READ=$CAPACITY_READ TENANT_RATE=$TENANT_RATE TENANT_SECONDS=$TENANT_SECONDS PERSIST=$PERSIST KAMAILIO_CHILDREN=$KAMAILIO_CHILDREN"
} >"$OUT/run.txt"
: >"$OUT/summary.md"
for phase in $PHASES; do
	case $phase in
	cost) run_cost ;;
	capacity) run_capacity ;;
	*) echo "flood: unknown phase $phase (cost | capacity)" >&2; exit 2 ;;
	esac
done
