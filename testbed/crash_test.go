package testbed

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/api"
)

// envInt reads a positive integer from the environment, else def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// sippCall is one call as SIPp saw it (uac_timed.xml's log lines).
type sippCall struct {
	answered, ended time.Time // ended zero: no 200 to its BYE
}

// readTimedLog parses the A/E lines uac_timed.xml writes to its log file.
func readTimedLog(t *testing.T, dir string) map[string]*sippCall {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, "*_logs.log"))
	if len(paths) != 1 {
		t.Fatalf("SIPp log file: %v", paths)
	}
	f, err := os.Open(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	calls := map[string]*sippCall{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 4 || (fs[0] != "A" && fs[0] != "E") {
			continue
		}
		sec, err1 := strconv.ParseFloat(fs[2], 64)
		usec, err2 := strconv.ParseFloat(fs[3], 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad SIPp log line %q", sc.Text())
		}
		at := time.Unix(int64(sec), int64(usec)*1000)
		c := calls[fs[1]]
		if c == nil {
			c = &sippCall{}
			calls[fs[1]] = c
		}
		if fs[0] == "A" {
			c.answered = at
		} else {
			c.ended = at
		}
	}
	return calls
}

// TestCrashRecovery: SIPp load through tollgate, kill -9 in the middle,
// restart on the same store, and compare what tollgate billed with the
// call lengths SIPp saw:
//   - every call whose BYE was answered well before the kill is billed in
//     full (no settled second lost);
//   - calls running at the kill are billed up to the last checkpoint
//     (at most checkpoint_interval, 1 s, short of the kill) and never
//     beyond it;
//   - the restarted gateway tears them down (BYE to both legs);
//   - counters agree with each other, none is negative, and no call is
//     counted twice (calls counted <= calls answered).
func TestCrashRecovery(t *testing.T) {
	requireSIPp(t)
	const hold = 2 * time.Second
	conf := gatewayConfig{MaxParallelCalls: -1, ShutdownGrace: 2 * time.Second}
	gw := startGateway(t, conf)
	conf = gw.conf // same directory and ports for the restart
	uas := startUAS(t, gw)
	_ = uas
	scenario, err := filepath.Abs("scenarios/uac_timed.xml")
	if err != nil {
		t.Fatal(err)
	}
	// CI runs a small load; TOLLGATE_CRASH_RATE and TOLLGATE_CRASH_CALLS
	// scale it up (see testbed/README.md).
	rate, calls := envInt("TOLLGATE_CRASH_RATE", 40), envInt("TOLLGATE_CRASH_CALLS", 240)
	uac := startUAC(t, gw, 120*time.Second, "-sf", scenario,
		"-r", strconv.Itoa(rate), "-m", strconv.Itoa(calls), "-l", strconv.Itoa(calls),
		"-d", strconv.Itoa(int(hold/time.Millisecond)), "-trace_logs")

	// Let calls complete and others run, then kill -9 mid-load.
	gw.waitLog(60*time.Second, "a quarter of the calls ended", func() bool { return gw.count(message("call ended")) >= calls/4 })
	killed := time.Now()
	if err := gw.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-gw.done
	uac.wait(130 * time.Second) // the rest of its calls fail: the gateway is gone

	seen := readTimedLog(t, uac.dir)
	const commitSlack = 100 * time.Millisecond // a BYE answered this close to the kill may not be committed yet
	const checkpoint = time.Second             // store.checkpoint_interval (default)
	var (
		lower, upper      time.Duration
		settled, answered int
		runningAtKill     int
	)
	for _, c := range seen {
		if c.answered.IsZero() || c.answered.After(killed) {
			continue
		}
		answered++
		switch {
		case !c.ended.IsZero() && c.ended.Before(killed.Add(-commitSlack)):
			settled++
			lower += hold
			upper += c.ended.Sub(c.answered) + 50*time.Millisecond
		default:
			runningAtKill++
			if d := killed.Add(-checkpoint - commitSlack).Sub(c.answered); d > 0 {
				lower += min(d, hold)
			}
			end := killed
			if !c.ended.IsZero() && c.ended.Before(end) {
				end = c.ended
			}
			upper += end.Sub(c.answered) + 50*time.Millisecond
		}
	}
	if settled < calls/6 || runningAtKill < 10 {
		t.Fatalf("load shape: %d calls settled and %d running at the kill; want >= 40 and >= 10", settled, runningAtKill)
	}

	// Restart on the same store.
	gw2 := startGateway(t, conf)
	restored, ok := gw2.find(message("calls active at the last stop were billed up to the last checkpoint and torn down"))
	if !ok {
		t.Fatal("the restarted gateway restored no call")
	}
	if n := int(restored.num("calls")); n < 1 || n > runningAtKill+2 {
		t.Errorf("restored calls = %d, want 1..%d (running at the kill)", n, runningAtKill+2)
	}
	gw2.waitLog(5*time.Second, "restored calls torn down", func() bool {
		return gw2.count(message("call active at restart torn down")) == int(restored.num("calls"))
	})

	client := api.NewClient(gw2.apiURL, adminToken, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := client.Usage(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	var billed time.Duration
	var counted int64
	for _, d := range u.Days {
		if d.Calls < 0 || d.Seconds < 0 || d.Spend < 0 {
			t.Errorf("negative day %+v", d)
		}
		billed += time.Duration(d.Seconds * float64(time.Second))
		counted += d.Calls
	}
	t.Logf("SIPp: %d answered before the kill, %d settled, %d running; tollgate billed %.3f s over %d calls (bounds %.3f..%.3f s)",
		answered, settled, runningAtKill, billed.Seconds(), counted, lower.Seconds(), upper.Seconds())
	if billed < lower {
		t.Errorf("billed %.3f s < %.3f s: settled usage lost", billed.Seconds(), lower.Seconds())
	}
	if billed > upper+100*time.Millisecond {
		t.Errorf("billed %.3f s > %.3f s: usage counted twice or beyond the crash", billed.Seconds(), upper.Seconds())
	}
	if counted < int64(settled) || counted > int64(answered)+2 {
		t.Errorf("calls counted %d, want %d..%d (settled..answered)", counted, settled, answered)
	}
	for _, c := range u.Caps {
		if c.Cap != "max_monthly_minutes" {
			continue
		}
		used, err := c.Used.Float64()
		if err != nil || used < 0 {
			t.Fatalf("minutes used %q: %v", c.Used, err)
		}
		if diff := used*60 - billed.Seconds(); diff > 0.1 || diff < -0.1 {
			t.Errorf("minutes cap used %.3f min = %.3f s, days sum to %.3f s", used, used*60, billed.Seconds())
		}
	}

	// A second restart counts nothing again.
	gw2.signal(syscall.SIGTERM)
	if code := gw2.waitExit(15 * time.Second); code != 0 {
		t.Fatalf("tollgate exit code %d", code)
	}
	gw3 := startGateway(t, conf)
	if _, ok := gw3.find(message("calls active at the last stop were billed up to the last checkpoint and torn down")); ok {
		t.Error("second restart restored calls again")
	}
	u3, err := api.NewClient(gw3.apiURL, adminToken, nil).Usage(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(u3.Days) != fmt.Sprint(u.Days) {
		t.Errorf("usage changed across a clean restart:\n%v\n%v", u.Days, u3.Days)
	}
}
