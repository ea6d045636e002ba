// Command relayd is tollgate's media relay (meter/) behind the subset of
// rtpengine's NG control protocol that testbed/cmd/rtpbench uses (offer,
// answer, delete, ping), so one load measures both relays. It runs the
// same meter.Relay code the gateway runs per call; SIP is not involved
// (its cost is per call, not per packet).
//
//	relayd -ng 127.0.0.1:2224 -ip 127.0.0.1 -ports 40000-49999
package main

import (
	"flag"
	"log"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/tollgate/tollgate/meter"
	"github.com/tollgate/tollgate/testbed/ng"
)

func main() {
	ngAddr := flag.String("ng", "127.0.0.1:2224", "NG control address (UDP)")
	ip := flag.String("ip", "127.0.0.1", "media address")
	ports := flag.String("ports", "40000-49999", "media port range")
	readers := flag.Int("readers", 0, "goroutines reading the media sockets (0: twice GOMAXPROCS)")
	flag.Parse()
	lo, hi, _ := strings.Cut(*ports, "-")
	min, _ := strconv.Atoi(lo)
	max, _ := strconv.Atoi(hi)
	addr := netip.MustParseAddr(*ip)
	r, err := meter.New(meter.Config{Bind: addr, Advertise: addr, PortMin: min, PortMax: max, Readers: *readers})
	if err != nil {
		log.Fatal(err)
	}
	c, err := net.ListenPacket("udp", *ngAddr)
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex
	sessions := map[string]*meter.Session{}
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			log.Fatal(err)
		}
		cookie, msg, err := ng.Split(buf[:n])
		if err != nil {
			continue
		}
		reply := map[string]any{"result": "ok"}
		cmd, _ := msg["command"].(string)
		id, _ := msg["call-id"].(string)
		sdp, _ := msg["sdp"].(string)
		mu.Lock()
		switch cmd {
		case "ping":
			reply["result"] = "pong"
		case "offer", "answer":
			s := sessions[id]
			if s == nil && cmd == "offer" {
				if s, err = r.Open(); err == nil {
					sessions[id] = s
				}
			}
			md, perr := meter.ParseSDP([]byte(sdp))
			switch {
			case s == nil:
				reply = map[string]any{"result": "error", "error-reason": "no session or no ports"}
			case perr != nil:
				reply = map[string]any{"result": "error", "error-reason": perr.Error()}
			case cmd == "offer":
				s.A.SetRemote(md)
				reply["sdp"] = string(meter.RewriteSDP([]byte(sdp), addr, s.B.Port()))
			default:
				s.B.SetRemote(md)
				reply["sdp"] = string(meter.RewriteSDP([]byte(sdp), addr, s.A.Port()))
			}
		case "delete":
			if s := sessions[id]; s != nil {
				s.Close()
				delete(sessions, id)
			}
		default:
			reply = map[string]any{"result": "error", "error-reason": "unknown command"}
		}
		mu.Unlock()
		c.WriteTo(append([]byte(cookie+" "), ng.Encode(reply)...), from)
	}
}
