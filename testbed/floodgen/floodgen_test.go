package floodgen

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/internal/netns"
)

func TestMain(m *testing.M) { netns.Enter(m) }

// responder answers every datagram it receives with a short SIP response
// (twice for every tenth, to see extra responses counted) and records the
// requests.
func responder(t *testing.T) (addr string, requests func() []string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var mu sync.Mutex
	var got []string
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, string(buf[:n]))
			k := len(got)
			mu.Unlock()
			pc.WriteTo([]byte("SIP/2.0 403 Forbidden\r\n\r\n"), from)
			if k%10 == 0 {
				pc.WriteTo([]byte("SIP/2.0 503 Service Unavailable\r\n\r\n"), from)
			}
		}
	}()
	return pc.LocalAddr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

func TestRunPacesAndCounts(t *testing.T) {
	addr, requests := responder(t)
	srcs := []netip.Addr{netip.MustParseAddr("127.0.0.99"), netip.MustParseAddr("127.0.0.98")}
	res, err := Run(context.Background(), Config{Target: addr, Sources: srcs, Rate: 2000, Duration: time.Second, Linger: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 2000 || res.SendErrors != 0 {
		t.Fatalf("sent %d (errors %d), want 2000", res.Sent, res.SendErrors)
	}
	if res.Elapsed < 990*time.Millisecond || res.Elapsed > 1100*time.Millisecond {
		t.Errorf("elapsed %s, want about 1s", res.Elapsed)
	}
	reqs := requests()
	if len(reqs) != 2000 {
		t.Fatalf("responder got %d requests, want 2000", len(reqs))
	}
	if res.ByCode[403] != 2000 || res.ByCode[503] != 200 || res.Responses != 2200 {
		t.Errorf("responses %d by code %v, want 2000 403 and 200 503", res.Responses, res.ByCode)
	}
	// Every request parses, and each is a distinct call from its socket's
	// address.
	ids := map[string]bool{}
	from := map[string]int{}
	for _, r := range reqs {
		msg, err := sip.ParseMessage([]byte(r))
		if err != nil {
			t.Fatalf("request does not parse: %v\n%s", err, r)
		}
		req, ok := msg.(*sip.Request)
		if !ok || req.Method != sip.INVITE {
			t.Fatalf("not an INVITE: %s", r)
		}
		id := req.CallID().Value()
		if ids[id] {
			t.Fatalf("Call-ID %s sent twice", id)
		}
		ids[id] = true
		via := req.Via()
		from[via.Host]++
		if !strings.HasPrefix(via.Params.GetOr("branch", ""), "z9hG4bK-flood-") {
			t.Errorf("branch %q", via.Params.GetOr("branch", ""))
		}
	}
	if from["127.0.0.99"] != 1000 || from["127.0.0.98"] != 1000 {
		t.Errorf("requests per source %v, want 1000 each (round robin)", from)
	}
}

func TestRefusesOffLoopback(t *testing.T) {
	if _, err := Run(context.Background(), Config{Target: "192.0.2.1:5060", Rate: 1, Duration: time.Second}); err == nil {
		t.Error("a target off loopback was accepted")
	}
	if _, err := Run(context.Background(), Config{Target: "127.0.0.1:5060", Sources: []netip.Addr{netip.MustParseAddr("192.0.2.2")}, Rate: 1, Duration: time.Second}); err == nil {
		t.Error("a source off loopback was accepted")
	}
}
