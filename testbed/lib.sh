# Shared by testbed/bench.sh and testbed/flood.sh (sourced): child process
# bookkeeping, CPU ticks from /proc, and socket checks. The sourcing script
# sets NAME (its name, for messages).

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

# forget_pid PID: drop a reaped child from PIDS (cleanup must not signal a
# PID that may have been reused).
forget_pid() {
	local keep=() q
	for q in "${PIDS[@]}"; do
		if [ "$q" != "$1" ]; then keep+=("$q"); fi
	done
	PIDS=("${keep[@]}")
}

# stop_pid PID: SIGTERM, wait for it, forget it.
stop_pid() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	forget_pid "$1"
}

# tree_ticks PID: "pid ticks" for PID and each of its descendants (ticks:
# utime+stime in clock ticks). cat, not awk, opens the stat files: a
# process may exit between the glob and the read (mawk stops at a file it
# cannot open).
tree_ticks() {
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" '
		{
			# /proc/PID/stat: "pid (comm) state ppid ...", comm may contain
			# spaces; the fields after it.
			pid = $1
			line = $0
			sub(/^.*\) /, "", line)
			split(line, f, " ")
			ppid[pid] = f[2]           # field 4
			ticks[pid] = f[12] + f[13] # fields 14 (utime) and 15 (stime)
		}
		END {
			keep[root] = 1
			changed = 1
			while (changed) {
				changed = 0
				for (p in ppid) if (!(p in keep) && (ppid[p] in keep)) { keep[p] = 1; changed = 1 }
			}
			for (p in keep) if (p in ticks) print p, ticks[p]
		}'
}

# cpu_ticks PID: utime+stime of PID and all its descendants, in clock ticks.
cpu_ticks() {
	tree_ticks "$1" | awk '{ t += $2 } END { print t + 0 }'
}

# udp_listening IP PORT: something is bound to IP:PORT (UDP).
udp_listening() {
	ss -Huln "src $1:$2" 2>/dev/null | grep -q .
}

# tcp_listening IP PORT: something listens on IP:PORT (TCP).
tcp_listening() {
	ss -Htln "src $1:$2" 2>/dev/null | grep -q .
}

wait_listening() {
	local _
	for _ in $(seq 1 100); do
		if udp_listening "$1" "$2"; then
			return 0
		fi
		sleep 0.1
	done
	echo "$NAME: nothing listening on $1:$2 after 10s" >&2
	exit 1
}

now() {
	date +%s.%N
}

# others_ticks STATE: CPU ticks used since the first call by every process
# that is not this script or one of its descendants (another engineer's
# build or benchmark), summed per process between calls; STATE keeps the
# last call's per-process ticks. (/proc/stat is no use here: its tick-based
# busy time undercounts bursty processes such as the proxies.)
others_ticks() {
	# tree_ticks 1: every user process; tree_ticks $$: this script's own.
	{ tree_ticks "$$" | sed 's/^/mine /'; tree_ticks 1; } | awk -v state="$1" '
		$1 == "mine" { keep[$2] = 1; next }
		{ ticks[$1] = $2 }
		END {
			first = 1
			while ((getline l < state) > 0) {
				split(l, a, " ")
				if (a[1] == "cum") { cum = a[2]; first = 0 } else prev[a[1]] = a[2]
			}
			close(state)
			for (p in ticks) {
				if (p in keep || first) continue
				d = ticks[p] - ((p in prev) ? prev[p] : 0)
				if (d > 0) cum += d
			}
			print "cum", cum + 0 > state
			for (p in ticks) if (!(p in keep)) print p, ticks[p] > state
			close(state)
			print cum + 0
		}'
}

