// Command flooder sends a paced INVITE flood over UDP from loopback source
// addresses and prints, as one JSON object, how many requests it sent and
// how many responses (by status code) came back. testbed/flood.sh runs it;
// see testbed/floodgen for the pacing and the requests.
//
//	flooder -target 127.0.0.1:25060 -rate 5000 -duration 10s
//	flooder -target 127.0.0.1:25060 -rate 20000 -duration 10s -source 127.0.1.1 -sources 2000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"time"

	"github.com/tollgate/tollgate/testbed/floodgen"
)

func main() {
	target := flag.String("target", "127.0.0.1:5060", "the gateway's SIP UDP address (loopback)")
	source := flag.String("source", "127.0.0.99", "the (first) source address")
	sources := flag.Int("sources", 1, "how many consecutive source addresses from -source, round robin")
	rate := flag.Float64("rate", 5000, "INVITEs per second, all sources together")
	duration := flag.Duration("duration", 10*time.Second, "how long to send")
	tick := flag.Duration("tick", time.Millisecond, "pacing interval (one batch per tick)")
	linger := flag.Duration("linger", time.Second, "how long to keep reading responses after the last request")
	user := flag.String("user", "15550001", "Request-URI user")
	noRead := flag.Bool("noread", false, "do not read the responses (they are not counted)")
	flag.Parse()

	first, err := netip.ParseAddr(*source)
	if err != nil || !first.Is4() {
		fail(fmt.Errorf("-source %q: want an IPv4 address", *source))
	}
	if *sources < 1 {
		fail(fmt.Errorf("-sources must be >= 1"))
	}
	var addrs []netip.Addr
	for a, i := first, 0; i < *sources; a, i = a.Next(), i+1 {
		addrs = append(addrs, a)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := floodgen.Run(ctx, floodgen.Config{
		Target: *target, Sources: addrs, Rate: *rate, Duration: *duration,
		Tick: *tick, Linger: *linger, User: *user, NoRead: *noRead,
	})
	if err != nil && ctx.Err() == nil {
		fail(err)
	}
	byCode := map[string]uint64{}
	for c, n := range res.ByCode {
		byCode[fmt.Sprint(c)] = n
	}
	out := map[string]any{
		"target": *target, "sources": len(addrs), "first_source": first.String(),
		"rate": *rate, "duration_s": duration.Seconds(), "read": !*noRead,
		"sent": res.Sent, "send_errors": res.SendErrors, "achieved_rate": res.AchievedRate(),
		"elapsed_s": res.Elapsed.Seconds(), "responses": res.Responses, "by_code": byCode, "other": res.Other,
		"sent_per_second": res.SentPerSecond, "responses_per_second": res.ResponsesPerSecond,
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "flooder:", err)
	os.Exit(1)
}
