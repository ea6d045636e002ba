#!/usr/bin/env bash
# Cluster peer comparison (issue 12): three tollgate gateways sharing a
# tenant's parallel-calls cap through the cluster ledger (NATS JetStream KV,
# the first gateway's embedded server, R1) against three Kamailio nodes
# sharing it through a DMQ-replicated dialog profile
# (testbed/kamailio/kamailio-dmq.cfg), with the same offered load, in one
# invocation.
#
#   testbed/cluster-bench.sh                  # both systems, both scenarios, RUNS=3
#   SYSTEMS=kamailio RUNS=1 testbed/cluster-bench.sh
#
# Parties on loopback as in testbed/bench.sh: the proxies on 127.0.0.1, the
# carrier (one SIPp uas, shared by the three nodes of a system) on
# 127.0.0.2, the tenant's PBX (one SIPp uac per node, scenario
# testbed/scenarios/uac_cap.xml: a 486 is acknowledged and counted, not an
# error) on 127.0.0.10. Every port is picked at random in 20000-59999 and
# checked free (UDP and TCP) before use.
#
# Scenarios, each run RUNS times per system with freshly started proxies
# (and, for tollgate, fresh stores and ledger):
#   cap:     tenant cap CAP (default 50) over the cluster; each node's uac
#            offers PER_NODE calls (default 100) at OFFER_RATE calls/s
#            (default 50: within 2 s), all three at once, each answered call
#            held HOLD_MS (default 8000), so no slot frees while calls are
#            offered. admitted = calls the proxies relayed to the carrier
#            (the uas's TotalCallCreated), over = admitted - CAP; "answered"
#            (the uacs' 200s to the INVITE, counts files) is given too:
#            below admitted when calls failed (e.g. a relayed INVITE timed
#            out, 408). With KAMAILIO_CHILDREN > 1, SIPp aborts calls on a
#            180 relayed after the 200 and sends their BYE at once, which
#            frees slots during the offer: admitted - failed is then the
#            figure to compare with CAP.
#   burst:   the same at BURST_RATE calls/s per node (default 1000: each
#            node's 100 calls within 0.1 s), the offered concurrency that
#            tests how fast the nodes learn of each other's calls.
#   ring:    as cap, but the carrier rings RING_MS (default 2000) between
#            its 180 and its 200 (testbed/scenarios/uas_ring.xml), as a
#            callee does: admitted at the INVITE, answered later.
#   sustain: SUST_RATE calls/s in total (default 200, a third per node) for
#            SUST_SECONDS (default 15), calls held SUST_HOLD_MS (default
#            1000), cap SUST_CAP (default 10000: checked on every INVITE,
#            never reached).
# "idle cores": the proxies' CPU while idle, over the settle period before
# the load (background work: tollgate's ledger rounds and embedded NATS,
# Kamailio's timers and DMQ pings); it is inside the CPU figures too.
# CPU: utime+stime of the three proxies' process trees (/proc/PID/stat,
# children included: Kamailio's workers, DMQ workers, timers) from just
# before the uacs start to the moment every call has ended, divided by
# CLK_TCK; per admitted call (cap: the rejected calls' work is in it) and
# per successful call (sustain). "other cores": CPU of processes not
# started by this script over the same window (other engineers' work).
#
# Environment:
#   SYSTEMS            default "tollgate kamailio"
#   SCENARIOS          default "cap sustain"
#   RUNS               default 3
#   CAP PER_NODE OFFER_RATE HOLD_MS          the cap scenario (see above)
#   BURST_RATE                               the burst scenario's rate
#   RING_MS                                  the ring scenario's ringing time
#   SUST_RATE SUST_SECONDS SUST_HOLD_MS SUST_CAP   the sustain scenario
#   KAMAILIO_CHILDREN  UDP workers per Kamailio listen socket (default 1;
#                      with several, a 180 may be relayed after the 200,
#                      see testbed/kamailio/kamailio.cfg)
#   SHARING            on (default) | off: the control, three independent
#                      nodes each with the whole cap (tollgate: cluster
#                      disabled, each its own embedded NATS without a client
#                      port; Kamailio: enable_dmq 0, no DMQ peers)
#   SETTLE_SECONDS     wait after the proxies listen, before the load
#                      (default 4: DMQ peer discovery, tollgate's ledger)
#   OUT                default testbed/results/cluster-<time>
# tollgate's admin API runs on a free port per gateway; its /metrics gives
# the ledger requests (tollgate_cluster_ledger_rtt_seconds_count), lease
# acquisitions and "ledger full" answers over the window, summed.
#
# Needs sipp (Debian: sip-tester) and kamailio with the dmq module (Debian:
# kamailio; the dialog and dmq modules are in the base package). Not run by
# CI: it takes about 5 minutes and wants an otherwise idle machine.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

SYSTEMS=${SYSTEMS:-"tollgate kamailio"}
SCENARIOS=${SCENARIOS:-"cap burst ring sustain"}
RUNS=${RUNS:-3}
CAP=${CAP:-50}
PER_NODE=${PER_NODE:-100}
OFFER_RATE=${OFFER_RATE:-50}
BURST_RATE=${BURST_RATE:-1000}
RING_MS=${RING_MS:-2000}
HOLD_MS=${HOLD_MS:-8000}
SUST_RATE=${SUST_RATE:-200}
SUST_SECONDS=${SUST_SECONDS:-15}
SUST_HOLD_MS=${SUST_HOLD_MS:-1000}
SUST_CAP=${SUST_CAP:-10000}
KAMAILIO_CHILDREN=${KAMAILIO_CHILDREN:-1}
SHARING=${SHARING:-on}
SETTLE_SECONDS=${SETTLE_SECONDS:-4}
NODES=3
OUT=${OUT:-$ROOT/testbed/results/cluster-$(date -u +%Y%m%dT%H%M%SZ)}
CLK_TCK=$(getconf CLK_TCK)
SCENARIO_XML=$ROOT/testbed/scenarios/uac_cap.xml

command -v sipp >/dev/null || { echo "cluster-bench: sipp not found (apt-get install sip-tester)" >&2; exit 1; }
case " $SYSTEMS " in *" kamailio "*)
	KAMAILIO=${KAMAILIO:-$(command -v kamailio || echo /usr/sbin/kamailio)}
	[ -x "$KAMAILIO" ] || { echo "cluster-bench: kamailio not found (apt-get install kamailio)" >&2; exit 1; }
	[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/dmq.so ] ||
		{ echo "cluster-bench: Kamailio's dmq module not found (apt-get install kamailio)" >&2; exit 1; }
	;;
esac
command -v curl >/dev/null || { echo "cluster-bench: curl not found (apt-get install curl)" >&2; exit 1; }
mkdir -p "$OUT"
export TOLLGATE_ADMIN_TOKEN=${TOLLGATE_ADMIN_TOKEN:-cluster-bench-$RANDOM$RANDOM$RANDOM$RANDOM}
API_PORTS=()

NAME=cluster-bench
# shellcheck source=testbed/lib.sh
. "$ROOT/testbed/lib.sh"

# free_port VAR IP...: sets VAR to a random port in 20000-59999 free for
# UDP and TCP on every IP given and not handed out before in this run (not
# in a $(...) subshell: TAKEN must persist).
TAKEN=" "
free_port() {
	local var=$1 _p _ip _ok _
	shift
	for _ in $(seq 1 200); do
		_p=$((20000 + RANDOM % 40000))
		case $TAKEN in *" $_p "*) continue ;; esac
		_ok=1
		for _ip in "$@"; do
			if udp_listening "$_ip" "$_p" || tcp_listening "$_ip" "$_p"; then _ok=0; fi
		done
		if [ "$_ok" = 1 ]; then
			TAKEN="$TAKEN$_p "
			printf -v "$var" %s "$_p"
			return
		fi
	done
	echo "cluster-bench: no free port found" >&2
	exit 1
}

# media_port VAR IP: sets VAR to a free even port with the next three free
# as well (SIPp's -mp uses the port and the ones after it).
media_port() {
	local var=$1 _p _q _ok _
	shift
	for _ in $(seq 1 200); do
		_p=$((20000 + 2 * (RANDOM % 20000)))
		_ok=1
		for _q in $_p $((_p + 1)) $((_p + 2)) $((_p + 3)); do
			case $TAKEN in *" $_q "*) _ok=0 ;; esac
			if udp_listening "$1" "$_q"; then _ok=0; fi
		done
		if [ "$_ok" = 1 ]; then
			TAKEN="$TAKEN$_p $((_p + 1)) $((_p + 2)) $((_p + 3)) "
			printf -v "$var" %s "$_p"
			return
		fi
	done
	echo "cluster-bench: no free media port found" >&2
	exit 1
}

BUILT=
build_tollgate() {
	if [ -z "$BUILT" ]; then
		echo "cluster-bench: building bin/tollgate"
		/usr/local/go/bin/go version >/dev/null 2>&1 && GO=/usr/local/go/bin/go || GO=go
		$GO build -o bin/tollgate ./cmd/tollgate
		BUILT=1
	fi
}

# start_tollgate DIR CAP UAS_PORT: three gateways gw-a..gw-c, gw-a runs the
# embedded NATS (JetStream, R1 ledger bucket); sets PROXY_PIDS, NODE_PORTS.
start_tollgate() {
	local dir=$1 cap=$2 uas_port=$3 nats_port i node port natsy api_port
	build_tollgate
	free_port nats_port 127.0.0.1
	PROXY_PIDS=()
	NODE_PORTS=()
	API_PORTS=()
	for i in 0 1 2; do
		free_port api_port 127.0.0.1
		API_PORTS+=("$api_port")
		node=gw-$(printf "\\x$(printf %x $((97 + i)))")
		free_port port 127.0.0.1
		NODE_PORTS+=("$port")
		if [ "$SHARING" = off ]; then
			natsy='  listen: "off"'
		elif [ "$i" = 0 ]; then
			natsy="  listen: 127.0.0.1:$nats_port"
		else
			natsy="  url: nats://127.0.0.1:$nats_port"
		fi
		mkdir -p "$dir/$node"
		cat >"$dir/$node/tollgate.yaml" <<EOF
# written by testbed/cluster-bench.sh
node: $node
cluster:
  enabled: $([ "$SHARING" = off ] && echo false || echo true)
  replicas: 1
log:
  level: warn
  format: json
sip:
  listen:
    - transport: udp
      address: 127.0.0.1:$port
  advertise: 127.0.0.1
  timer_c: 30s
  max_call_duration: 5m
  shutdown_grace: 0s
media:
  mode: off
carriers:
  - name: carrier
    address: 127.0.0.2:$uas_port
    transport: udp
    sources: [127.0.0.2/32]
plans:
  - name: bench
    limits:
      max_parallel_calls: $cap
tenants:
  - name: demo
    plan: bench
    carrier: carrier
    sources: [127.0.0.10/32]
nats:
$natsy
store:
  data_dir: $dir/$node/data
api:
  listen: 127.0.0.1:$api_port
  tokens:
    - name: bench
      scope: admin
      token_env: TOLLGATE_ADMIN_TOKEN
EOF
		bin/tollgate serve -c "$dir/$node/tollgate.yaml" 2>"$dir/$node/tollgate.log" &
		PROXY_PIDS+=("$!")
		PIDS+=("$!")
		wait_listening 127.0.0.1 "$port"
	done
}

# start_kamailio DIR CAP UAS_PORT: three Kamailio nodes linked by DMQ; sets
# PROXY_PIDS, NODE_PORTS.
start_kamailio() {
	local dir=$1 cap=$2 uas_port=$3 i a b cfg p q
	local dmq=()
	PROXY_PIDS=()
	NODE_PORTS=()
	API_PORTS=()
	for i in 0 1 2; do
		free_port p 127.0.0.1
		free_port q 127.0.0.1
		NODE_PORTS+=("$p")
		dmq+=("$q")
	done
	for i in 0 1 2; do
		a=$(((i + 1) % 3))
		b=$(((i + 2) % 3))
		mkdir -p "$dir/kam-$i"
		cfg=$dir/kam-$i/kamailio.cfg
		sed -e "s/@GW_PORT@/${NODE_PORTS[i]}/g; s/@DMQ_PORT@/${dmq[i]}/g" \
			-e "s/@PEER_A@/${dmq[a]}/g; s/@PEER_B@/${dmq[b]}/g" \
			-e "s/@UAS_PORT@/$uas_port/g; s/@CAP@/$cap/g; s/@CHILDREN@/$KAMAILIO_CHILDREN/g" \
			"$ROOT/testbed/kamailio/kamailio-dmq.cfg" >"$cfg"
		if [ "$SHARING" = off ]; then
			sed -i -e 's/"enable_dmq", 1/"enable_dmq", 0/' -e '/"notification_address"/d' "$cfg"
		fi
		"$KAMAILIO" -c -f "$cfg" >"$dir/kam-$i/check.log" 2>&1 ||
			{ cat "$dir/kam-$i/check.log" >&2; exit 1; }
		"$KAMAILIO" -DD -E -f "$cfg" -P "$dir/kam-$i/kamailio.pid" -Y "$dir/kam-$i" \
			-m 256 -M 16 >"$dir/kam-$i/kamailio.log" 2>&1 &
		PROXY_PIDS+=("$!")
		PIDS+=("$!")
	done
	for i in 0 1 2; do
		wait_listening 127.0.0.1 "${NODE_PORTS[i]}"
		wait_listening 127.0.0.1 "${dmq[i]}"
	done
}

# ledger_stats: tollgate only, summed over the gateways' /metrics: "ledger
# requests (read or compare-and-set round trips), lease acquisitions,
# requests the ledger had no capacity for"; "- - -" for Kamailio.
ledger_stats() {
	local p
	if [ "${#API_PORTS[@]}" = 0 ]; then
		echo "- - -"
		return
	fi
	for p in "${API_PORTS[@]}"; do
		curl -fsS -m 5 "http://127.0.0.1:$p/metrics" || true
	done | awk '
		/^tollgate_cluster_ledger_rtt_seconds_count / { r += $2 }
		/^tollgate_cluster_lease_acquisitions_total / { a += $2 }
		/^tollgate_cluster_ledger_full_total / { f += $2 }
		END { printf "%d %d %d\n", r, a, f }'
}

# node_ticks: each proxy's CPU ticks, "a b c".
node_ticks() {
	local p out=""
	for p in "${PROXY_PIDS[@]}"; do
		out="$out $(cpu_ticks "$p")"
	done
	echo "${out# }"
}

proxies_ticks() {
	local p t=0
	for p in "${PROXY_PIDS[@]}"; do
		t=$((t + $(cpu_ticks "$p")))
	done
	echo "$t"
}

# counts_col FILE PATTERN: the last row's value of the first column whose
# name matches PATTERN in a SIPp -trace_counts file.
counts_col() {
	awk -F';' -v pat="$2" '
		NR == 1 { for (i = 1; i <= NF; i++) if ($i ~ pat) { c = i; break }; next }
		NF > 1 { v = $c }
		END { print (c && v != "") ? v + 0 : 0 }' "$1"
}

# stat_col FILE NAME: the last row's value of column NAME of a -trace_stat file.
stat_col() {
	awk -F';' -v name="$2" '
		NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i; next }
		NF > 1 { v = $c }
		END { print (c && v != "") ? v + 0 : 0 }' "$1"
}

RESULTS=$OUT/results.tsv
printf 'system\tscenario\trun\tcap\toffered\tanswered\tbusy486\tfailed\tuas_calls\tover\tcpu_s\tcpu_ms_per_admitted\twall_s\tother_cores\tidle_cores\tnode_cpu_s\tledger_requests\tlease_acquisitions\tledger_full\n' >"$RESULTS"

# run_one SYSTEM SCENARIO RUN
run_one() {
	local system=$1 scenario=$2 run=$3 dir cap rate m hold timeout uas_port uas_pid i
	local uas_args=(-sn uas)
	dir=$OUT/$system-$scenario-$run
	mkdir -p "$dir"
	case $scenario in
	cap)
		cap=$CAP rate=$OFFER_RATE m=$PER_NODE hold=$HOLD_MS
		;;
	burst)
		cap=$CAP rate=$BURST_RATE m=$PER_NODE hold=$HOLD_MS
		;;
	ring)
		cap=$CAP rate=$OFFER_RATE m=$PER_NODE hold=$HOLD_MS
		uas_args=(-sf "$ROOT/testbed/scenarios/uas_ring.xml" -d "$RING_MS")
		;;
	sustain)
		cap=$SUST_CAP rate=$(awk -v r="$SUST_RATE" -v n=$NODES 'BEGIN { printf "%g", r / n }')
		m=$(awk -v r="$SUST_RATE" -v n=$NODES -v s="$SUST_SECONDS" 'BEGIN { printf "%d", r / n * s }')
		hold=$SUST_HOLD_MS
		;;
	esac
	timeout=$((m / ${rate%.*} + hold / 1000 + 30))
	local mp up
	free_port uas_port 127.0.0.2
	media_port mp 127.0.0.2
	(cd "$dir" && exec sipp "${uas_args[@]}" -i 127.0.0.2 -p "$uas_port" -mi 127.0.0.2 -mp "$mp" \
		-nostdin -buff_size 8388608 -trace_stat -stf uas-stats.csv -fd 1 >uas.screen 2>&1) &
	uas_pid=$!
	PIDS+=("$uas_pid")
	wait_listening 127.0.0.2 "$uas_port"
	"start_$system" "$dir" "$cap" "$uas_port"
	local i0 iw0 idle
	sleep 1
	i0=$(proxies_ticks)
	iw0=$(now)
	sleep "$SETTLE_SECONDS"
	idle=$(awk -v a="$i0" -v b="$(proxies_ticks)" -v w0="$iw0" -v w1="$(now)" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / hz / (w1 - w0) }')
	local t0 t1 w0 w1 o0 o1 n0 n1 l0 l1 uacs=()
	others_ticks "$dir/.others" >/dev/null
	l0=$(ledger_stats)
	n0=$(node_ticks)
	t0=$(proxies_ticks)
	w0=$(now)
	for i in 0 1 2; do
		mkdir -p "$dir/uac-$i"
		free_port up 127.0.0.10
		media_port mp 127.0.0.10
		(cd "$dir/uac-$i" && exec sipp -sf "$SCENARIO_XML" -i 127.0.0.10 -p "$up" \
			-mi 127.0.0.10 -mp "$mp" -s 15550001 "127.0.0.1:${NODE_PORTS[i]}" \
			-r "$rate" -rp 1000 -m "$m" -l "$m" -d "$hold" -nostdin -buff_size 4194304 \
			-trace_stat -stf stats.csv -fd 1 -trace_counts -trace_err -recv_timeout 10000 \
			-timeout "${timeout}s" -timeout_error >screen.log 2>&1) &
		uacs+=("$!")
		PIDS+=("$!")
	done
	local rcs=""
	for i in "${uacs[@]}"; do
		if wait "$i"; then rcs="$rcs 0"; else rcs="$rcs $?"; fi
		forget_pid "$i"
	done
	t1=$(proxies_ticks)
	n1=$(node_ticks)
	w1=$(now)
	l1=$(ledger_stats)
	o1=$(others_ticks "$dir/.others")
	sleep 1.5 # the uas's last stats row
	stop_pid "$uas_pid"
	# The last first: tollgate's gw-a runs the NATS server the others use.
	for i in 2 1 0; do stop_pid "${PROXY_PIDS[i]}"; done
	local admitted=0 busy=0 failed=0 f
	for i in 0 1 2; do
		f=$(ls "$dir/uac-$i"/*_counts.csv 2>/dev/null | head -1)
		if [ -n "$f" ]; then
			admitted=$((admitted + $(counts_col "$f" "_200_Recv$")))
			busy=$((busy + $(counts_col "$f" "_486_Recv$")))
		fi
		failed=$((failed + $(stat_col "$dir/uac-$i/stats.csv" "FailedCall(C)")))
	done
	local uas_calls
	uas_calls=$(stat_col "$dir/uas-stats.csv" "TotalCallCreated")
	awk -v OFS='\t' -v sys="$system" -v sc="$scenario" -v run="$run" -v cap="$cap" -v off=$((3 * m)) \
		-v ans="$admitted" -v adm="$uas_calls" -v busy="$busy" -v failed="$failed" -v uas="$uas_calls" \
		-v ticks=$((t1 - t0)) -v hz="$CLK_TCK" -v w0="$w0" -v w1="$w1" -v o="$o1" -v idle="$idle" -v n0="$n0" -v n1="$n1" -v l0="$l0" -v l1="$l1" 'BEGIN {
			over = sc != "sustain" ? adm - cap : "-"
			cpu = ticks / hz
			print sys, sc, run, cap, off, ans, busy, failed, uas, over, sprintf("%.2f", cpu),
				sprintf("%.3f", adm > 0 ? cpu * 1000 / adm : 0), sprintf("%.1f", w1 - w0),
				sprintf("%.2f", (w1 - w0) > 0 ? o / hz / (w1 - w0) : 0), idle, nodes(), led(1), led(2), led(3)
		}
		function nodes(  a, b, i, k, out) {
			k = split(n0, a, " "); split(n1, b, " ")
			for (i = 1; i <= k; i++) out = out (i > 1 ? "/" : "") sprintf("%.2f", (b[i] - a[i]) / hz)
			return out
		}
		function led(i,  a, b) {
			split(l0, a, " "); split(l1, b, " ")
			return a[i] == "-" ? "-" : b[i] - a[i]
		}' >>"$RESULTS"
	tail -1 "$RESULTS" | awk -F'\t' -v rcs="$rcs" '{
		printf "cluster-bench: %-8s %-7s run %s: cap %s, offered %s, answered %s, admitted (uas) %s, 486 %s, failed %s, over %s, proxies CPU %s s = %s ms/admitted call, %s s, other cores %s (uac exit%s)\n",
			$1, $2, $3, $4, $5, $6, $9, $7, $8, $10, $11, $12, $13, $14, rcs
		printf "cluster-bench:   proxies idle before the load: %s cores; CPU s per node %s; ledger requests %s, lease acquisitions %s, ledger full %s\n", $15, $16, $17, $18, $19 }'
}

echo "cluster-bench: $(nproc) CPUs, $NODES nodes per system, sharing $SHARING, systems: $SYSTEMS; output in $OUT"
echo "cluster-bench: $("${KAMAILIO:-true}" -v 2>/dev/null | head -1 || true); tollgate $(git describe --always --dirty 2>/dev/null || echo '?')"
for scenario in $SCENARIOS; do
	for run in $(seq 1 "$RUNS"); do
		for system in $SYSTEMS; do
			run_one "$system" "$scenario" "$run"
		done
	done
done

# The table: one row per system and scenario, ranges (min-max) over runs.
{
	echo
	echo "## cluster-bench: $NODES nodes per system, sharing $SHARING, $(nproc) CPUs, $RUNS runs, $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	echo "| system | scenario | cap | offered | admitted (relayed) | over the cap | answered | 486 | failed | proxies CPU s | CPU ms per admitted call | proxies idle, cores | ledger requests | other cores |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	awk -F'\t' '
		function rng(k, v) {
			if (!((k) in lo) || v < lo[k]) lo[k] = v
			if (!((k) in hi) || v > hi[k]) hi[k] = v
		}
		function show(k, fmt) {
			if (lo[k] == hi[k]) return sprintf(fmt, lo[k])
			return sprintf(fmt "–" fmt, lo[k], hi[k])
		}
		NR == 1 { next }
		{
			key = $1 SUBSEP $2
			if (!(key in seen)) { seen[key] = 1; order[++n] = key; cap[key] = $4; off[key] = $5 }
			rng(key SUBSEP "adm", $9); rng(key SUBSEP "ans", $6); rng(key SUBSEP "busy", $7); rng(key SUBSEP "failed", $8)
			rng(key SUBSEP "over", $10 == "-" ? 0 : $10); rng(key SUBSEP "cpu", $11)
			rng(key SUBSEP "ms", $12); rng(key SUBSEP "oth", $14); rng(key SUBSEP "idle", $15)
			if ($17 != "-" && $17 != "") rng(key SUBSEP "led", $17)
			ms[$1, $2] += $12; cnt[$1, $2]++
		}
		END {
			for (i = 1; i <= n; i++) {
				k = order[i]; split(k, a, SUBSEP)
				printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", a[1], a[2], cap[k], off[k],
					show(k SUBSEP "adm", "%d"), a[2] != "sustain" ? show(k SUBSEP "over", "%+d") : "–", show(k SUBSEP "ans", "%d"),
					show(k SUBSEP "busy", "%d"), show(k SUBSEP "failed", "%d"), show(k SUBSEP "cpu", "%.2f"),
					show(k SUBSEP "ms", "%.3f"), show(k SUBSEP "idle", "%.2f"),
					((k SUBSEP "led") in lo) ? show(k SUBSEP "led", "%d") : "–", show(k SUBSEP "oth", "%.2f")
			}
			print ""
			split("cap burst ring sustain", scs, " ")
			for (j = 1; j <= 4; j++) {
				s = scs[j]
				if ((("tollgate" SUBSEP s) in cnt) && (("kamailio" SUBSEP s) in cnt) && ms["kamailio", s] > 0)
					printf "- %s: CPU per admitted call, tollgate / Kamailio (means over runs): %.2f\n", s,
						(ms["tollgate", s] / cnt["tollgate", s]) / (ms["kamailio", s] / cnt["kamailio", s])
			}
		}' "$RESULTS"
} | tee "$OUT/summary.md"
