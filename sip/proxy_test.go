package sip

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/configs"
)

const outboundNumber = "4930123456"

func TestBasicCallAndByeFromCaller(t *testing.T) {
	e := newEnv(t)
	sess, callID := e.answeredCall(t)
	inv := e.carrier.waitFor(sip.INVITE, callID, time.Second).req

	// RFC 3261 §16.6: the callee sees the gateway's Via and Record-Route,
	// and a decremented Max-Forwards.
	if n := len(inv.GetHeaders("Via")); n != 2 {
		t.Errorf("callee saw %d Via headers, want 2", n)
	}
	rr := inv.RecordRoute()
	if rr == nil || !e.gw.isSelf(&rr.Address) || !rr.Address.UriParams.Has("lr") {
		t.Errorf("Record-Route = %v, want the gateway with lr", rr)
	}
	if mf := inv.MaxForwards(); mf == nil || mf.Val() != 69 {
		t.Errorf("Max-Forwards = %v, want 69", mf)
	}
	d := e.gw.Dialog(callID)
	if d == nil || d.State() != Confirmed || d.Tenant != "acme" || d.Direction.String() != "outbound" {
		t.Fatalf("dialog = %+v", d)
	}
	e.carrier.waitFor(sip.ACK, callID, time.Second)

	if err := sess.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	e.carrier.waitFor(sip.BYE, callID, time.Second)
	e.idle(t)
}

func TestByeFromCallee(t *testing.T) {
	e := newEnv(t)
	sess, callID := e.answeredCall(t)
	e.carrier.waitFor(sip.ACK, callID, time.Second)
	if err := e.carrier.dialog(callID).Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("callee BYE: %v", err)
	}
	bye := e.pbx.waitFor(sip.BYE, callID, time.Second).req
	if tagOf(bye.From().Params) != tagOf(sess.InviteResponse.To().Params) {
		t.Errorf("BYE From tag %q, want the callee's tag", tagOf(bye.From().Params))
	}
	e.idle(t)
	ended := e.waitEvent(t, admission.EventCallEnded, 1, time.Second)
	if c := ended.Call; c.Cause != "bye_callee" || c.End.HungUp != "callee" || c.End.Media != nil || c.AnsweredAt.IsZero() ||
		len(e.eventsOf(admission.EventCallStarted)) != 1 || len(e.eventsOf(admission.EventCallAnswered)) != 1 {
		t.Errorf("call.ended %+v %+v", c, c.End)
	}
}

func TestInboundCallToDID(t *testing.T) {
	e := newEnv(t)
	sess, code, err := e.carrier.invite(ctxT(t, 5*time.Second), e.gw, "+15550001")
	if err != nil || code != 200 {
		t.Fatalf("call: code %d err %v", code, err)
	}
	callID := callIDOf(sess.InviteRequest)
	if d := e.gw.Dialog(callID); d == nil || d.Direction.String() != "inbound" {
		t.Fatalf("dialog = %+v, want inbound", d)
	}
	e.pbx.waitFor(sip.INVITE, callID, time.Second)
	if err := sess.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	e.pbx.waitFor(sip.BYE, callID, time.Second)
	e.idle(t)
}

func TestCancelWhileRinging(t *testing.T) {
	e := newEnv(t)
	var cancelAt time.Time
	e.carrier.setOnCall(func(p *peer, req *sip.Request, tx sip.ServerTransaction) {
		tx.OnCancel(func(r *sip.Request) { p.record(r) })
		ringForever(p, req, tx)
	})
	host, port, _ := sip.ParseAddr(e.gw.Addr("udp"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sess, err := e.pbx.calls.Invite(ctxT(t, 5*time.Second), sip.Uri{User: outboundNumber, Host: host, Port: port}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = sess.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		if res.StatusCode == 180 {
			cancelAt = time.Now()
			cancel() // the UAC sends CANCEL now
		}
		return nil
	}})
	if err == nil {
		t.Fatal("call was answered, want cancelled")
	}
	if code := sess.InviteResponse.StatusCode; code != 487 {
		t.Errorf("caller got %d, want 487", code)
	}
	callID := callIDOf(sess.InviteRequest)
	got := e.carrier.waitFor(sip.CANCEL, callID, time.Second)
	// The CANCEL is relayed from tx.OnCancel, not after the transaction ends.
	if lag := got.at.Sub(cancelAt); lag > 50*time.Millisecond {
		t.Errorf("callee saw CANCEL %v after the caller cancelled, want ≤ 50ms", lag)
	}
	e.idle(t)
}

func TestReInvite(t *testing.T) {
	e := newEnv(t)
	sess, callID := e.answeredCall(t)
	reinv := sip.NewRequest(sip.INVITE, sess.InviteResponse.Contact().Address)
	reinv.SetBody([]byte("v=0\r\n"))
	res, err := sess.Do(ctxT(t, 5*time.Second), reinv)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("re-INVITE: %v %v", res, err)
	}
	if err := sess.WriteRequest(sip.NewRequest(sip.ACK, sess.InviteResponse.Contact().Address)); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, func() bool {
		return len(e.carrier.received(sip.INVITE, callID)) == 2 && len(e.carrier.received(sip.ACK, callID)) == 2
	}, "callee did not see the re-INVITE and its ACK")
	if d := e.gw.Dialog(callID); d == nil || d.State() != Confirmed {
		t.Fatal("re-INVITE ended the dialog")
	}
	info := sip.NewRequest(sip.INFO, sess.InviteResponse.Contact().Address)
	if res, err := sess.Do(ctxT(t, 5*time.Second), info); err != nil || res.StatusCode != 200 {
		t.Fatalf("INFO: %v %v", res, err)
	}
	caller, _ := e.gw.Dialog(callID).Legs()
	if caller.CSeq < 3 {
		t.Errorf("caller CSeq seen %d, want ≥ 3 (INVITE, re-INVITE, INFO)", caller.CSeq)
	}
	if err := sess.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	e.idle(t)
}

func TestCalleeBusyReleasesSlot(t *testing.T) {
	e := newEnv(t, withCap(1))
	e.carrier.setOnCall(reject(486, "Busy Here"))
	for i := 0; i < 3; i++ { // with a cap of 1, a leaked slot would block the next call
		_, code, _ := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber)
		if code != 486 {
			t.Fatalf("call %d: caller got %d, want the callee's 486", i, code)
		}
		e.idle(t)
	}
	if n := len(e.carrier.received(sip.INVITE, "")); n != 3 {
		t.Errorf("callee got %d INVITEs, want 3 (the slot must be released each time)", n)
	}
	for i := 1; i <= 3; i++ {
		ended := e.waitEvent(t, admission.EventCallEnded, i, time.Second)
		if c := ended.Call; c.Cause != "rejected_486" || c.End.HungUp != "callee" || c.End.Status != 486 || c.Billed != 0 || !c.AnsweredAt.IsZero() {
			t.Errorf("call.ended %d: %+v %+v", i, c, c.End)
		}
	}
}

func TestTimerCCancelsRingingBranch(t *testing.T) {
	e := newEnv(t, withTimerC(300*time.Millisecond))
	e.carrier.setOnCall(func(p *peer, req *sip.Request, tx sip.ServerTransaction) {
		tx.OnCancel(func(r *sip.Request) { p.record(r) })
		ringForever(p, req, tx)
	})
	sess, code, _ := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber)
	if code != 408 {
		t.Fatalf("caller got %d, want 408 after Timer C", code)
	}
	e.carrier.waitFor(sip.CANCEL, callIDOf(sess.InviteRequest), time.Second)
	e.idle(t)
}

func TestUnknownSourceGets403(t *testing.T) {
	e := newEnv(t)
	stranger := newPeer(t, strangeIP)
	_, code, _ := stranger.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber)
	if code != 403 {
		t.Fatalf("stranger got %d, want 403", code)
	}
	if n := len(e.carrier.received(sip.INVITE, "")); n != 0 {
		t.Fatalf("carrier received %d INVITEs from an unknown source", n)
	}
}

func TestUnknownDIDGets404(t *testing.T) {
	e := newEnv(t)
	_, code, _ := e.carrier.invite(ctxT(t, 5*time.Second), e.gw, "+4930999")
	if code != 404 {
		t.Fatalf("inbound call to unknown DID got %d, want 404", code)
	}
	if n := len(e.pbx.received(sip.INVITE, "")); n != 0 {
		t.Fatalf("PBX received %d INVITEs", n)
	}
}

func TestMaxForwardsZeroGets483(t *testing.T) {
	e := newEnv(t)
	host, port, _ := sip.ParseAddr(e.gw.Addr("udp"))
	req := sip.NewRequest(sip.INVITE, sip.Uri{User: outboundNumber, Host: host, Port: port})
	mf := sip.MaxForwardsHeader(0)
	req.AppendHeader(&mf)
	res, err := e.pbx.cli.Do(ctxT(t, 5*time.Second), req)
	if err != nil || res.StatusCode != 483 {
		t.Fatalf("got %v %v, want 483", res, err)
	}
	if n := len(e.carrier.received(sip.INVITE, "")); n != 0 {
		t.Fatalf("INVITE with Max-Forwards 0 was forwarded")
	}
}

func TestOptionsToGateway(t *testing.T) {
	e := newEnv(t)
	host, port, _ := sip.ParseAddr(e.gw.Addr("udp"))
	res, err := e.pbx.cli.Do(ctxT(t, 5*time.Second), sip.NewRequest(sip.OPTIONS, sip.Uri{Host: host, Port: port}))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("OPTIONS: %v %v", res, err)
	}
	stranger := newPeer(t, strangeIP)
	res, err = stranger.cli.Do(ctxT(t, 5*time.Second), sip.NewRequest(sip.OPTIONS, sip.Uri{Host: host, Port: port}))
	if err != nil || res.StatusCode != 403 {
		t.Fatalf("OPTIONS from stranger: %v %v, want 403", res, err)
	}
}

func TestParallelCapIsExactUnderBurst(t *testing.T) {
	const burst, capN = 500, 50
	e := newEnv(t, withCap(capN))
	type result struct {
		sess   *sipgo.DialogClientSession
		code   int
		reason string
	}
	results := make([]result, burst)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < burst; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			sess, code, _ := e.pbx.invite(ctxT(t, 30*time.Second), e.gw, outboundNumber)
			r := result{sess: sess, code: code}
			if sess != nil && sess.InviteResponse != nil {
				if h := sess.InviteResponse.GetHeader("Reason"); h != nil {
					r.reason = h.Value()
				}
			}
			results[i] = r
		}(i)
	}
	close(start)
	wg.Wait()
	var ok, busy []result
	for _, r := range results {
		switch r.code {
		case 200:
			ok = append(ok, r)
		case 486:
			busy = append(busy, r)
			if !strings.Contains(r.reason, "max_parallel_calls") {
				t.Fatalf("486 Reason = %q, want it to name the cap", r.reason)
			}
		default:
			t.Fatalf("unexpected final response %d", r.code)
		}
	}
	if len(ok) != capN || len(busy) != burst-capN {
		t.Fatalf("admitted %d, rejected %d; want exactly %d and %d", len(ok), len(busy), capN, burst-capN)
	}
	if got := e.adm.Active("acme"); got != capN {
		t.Fatalf("engine counts %d active calls, want %d", got, capN)
	}
	for _, r := range ok {
		if err := r.sess.Bye(ctxT(t, 10*time.Second)); err != nil {
			t.Fatalf("BYE: %v", err)
		}
	}
	e.idle(t)

	// Once those end, the next 50 are admitted.
	var admitted sync.WaitGroup
	codes := make(chan int, capN)
	for i := 0; i < capN; i++ {
		admitted.Add(1)
		go func() {
			defer admitted.Done()
			sess, code, _ := e.pbx.invite(ctxT(t, 30*time.Second), e.gw, outboundNumber)
			codes <- code
			if code == 200 {
				sess.Bye(ctxT(t, 10*time.Second))
			}
		}()
	}
	admitted.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("after release, a call got %d, want 200", c)
		}
	}
	e.idle(t)
}

var testCause = Cause{Name: "test_cut", Q850: 16, Text: "budget exhausted", SIPCode: 480, SIPReason: "Temporarily Unavailable"}

func TestTeardownConfirmedCall(t *testing.T) {
	e := newEnv(t)
	sess, callID := e.answeredCall(t)
	e.carrier.waitFor(sip.ACK, callID, time.Second)
	if !e.gw.TeardownCall(callID, testCause) {
		t.Fatal("teardown refused")
	}
	want := `Q.850;cause=16;text="budget exhausted"`
	toCallee := e.carrier.waitFor(sip.BYE, callID, time.Second).req
	toCaller := e.pbx.waitFor(sip.BYE, callID, time.Second).req
	for name, bye := range map[string]*sip.Request{"callee": toCallee, "caller": toCaller} {
		if h := bye.GetHeader("Reason"); h == nil || h.Value() != want {
			t.Errorf("%s BYE Reason = %v, want %s", name, h, want)
		}
	}
	if toCallee.CSeq().SeqNo <= sess.InviteRequest.CSeq().SeqNo {
		t.Errorf("callee BYE CSeq %d not above the INVITE's %d", toCallee.CSeq().SeqNo, sess.InviteRequest.CSeq().SeqNo)
	}
	if tagOf(toCaller.From().Params) != tagOf(sess.InviteResponse.To().Params) || tagOf(toCaller.To().Params) != tagOf(sess.InviteRequest.From().Params) {
		t.Errorf("caller BYE has the wrong dialog tags: From %v To %v", toCaller.From(), toCaller.To())
	}
	e.idle(t)
	if e.gw.TeardownCall(callID, testCause) {
		t.Error("second teardown of the same call succeeded")
	}
}

func TestTeardownEarlyCall(t *testing.T) {
	e := newEnv(t)
	e.carrier.setOnCall(func(p *peer, req *sip.Request, tx sip.ServerTransaction) {
		tx.OnCancel(func(r *sip.Request) { p.record(r) })
		ringForever(p, req, tx)
	})
	type out struct {
		sess *sipgo.DialogClientSession
		code int
	}
	done := make(chan out, 1)
	go func() {
		sess, code, _ := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber)
		done <- out{sess, code}
	}()
	inv := e.carrier.waitFor(sip.INVITE, "", 2*time.Second).req
	callID := callIDOf(inv)
	eventually(t, time.Second, func() bool { return e.gw.Dialog(callID) != nil }, "no dialog")
	if !e.gw.TeardownCall(callID, testCause) {
		t.Fatal("teardown refused")
	}
	// A second request for the same early call is a no-op (issue 8, 3f).
	if e.gw.TeardownCall(callID, testCause) {
		t.Error("second teardown of the early call reported true")
	}
	if n := e.obs.count(e.obs.teardowns, testCause.Name); n != 1 {
		t.Errorf("teardown metric counted %d times, want 1", n)
	}
	r := <-done
	if r.code != 480 {
		t.Fatalf("caller got %d, want 480", r.code)
	}
	if h := r.sess.InviteResponse.GetHeader("Reason"); h == nil || !strings.Contains(h.Value(), "budget exhausted") {
		t.Errorf("Reason = %v", h)
	}
	e.carrier.waitFor(sip.CANCEL, callID, time.Second)
	e.idle(t)
}

func TestMaxCallDurationReapsCall(t *testing.T) {
	e := newEnv(t, withConfig(func(c *configs.Config) { c.SIP.MaxCallDuration = 200 * time.Millisecond }))
	_, callID := e.answeredCall(t)
	e.carrier.waitFor(sip.BYE, callID, 2*time.Second)
	e.pbx.waitFor(sip.BYE, callID, 2*time.Second)
	e.idle(t)
}

func TestShutdownDrainsThenTearsDown(t *testing.T) {
	e := newEnv(t)
	_, callID := e.answeredCall(t)
	e.carrier.waitFor(sip.ACK, callID, time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- e.gw.Shutdown(ctx) }()
	eventually(t, time.Second, func() bool { return e.gw.draining.Load() }, "not draining")

	// New calls are refused while the active one is left to finish.
	if _, code, _ := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber); code != 503 {
		t.Fatalf("new call while draining got %d, want 503", code)
	}
	if e.gw.ActiveCalls() != 1 {
		t.Fatalf("active call was not left to drain")
	}
	cancel() // grace period over
	e.carrier.waitFor(sip.BYE, callID, 2*time.Second)
	e.pbx.waitFor(sip.BYE, callID, 2*time.Second)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if e.adm.Active("acme") != 0 {
		t.Fatal("slot not released on shutdown")
	}
}

// A PBX on TCP calling out through a UDP carrier, and an inbound call back
// to it: the gateway changes transport and records two routes.
func TestTCPPBXToUDPCarrier(t *testing.T) {
	e := newEnv(t, withTCPPBX())
	sess, code, err := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber)
	if err != nil || code != 200 {
		t.Fatalf("call over TCP: code %d err %v", code, err)
	}
	callID := callIDOf(sess.InviteRequest)
	inv := e.carrier.waitFor(sip.INVITE, callID, time.Second).req
	if n := len(inv.GetHeaders("Record-Route")); n != 2 {
		t.Errorf("callee saw %d Record-Route entries, want 2 (transport change)", n)
	}
	if v := inv.Via(); v.Transport != "UDP" {
		t.Errorf("gateway Via transport toward carrier = %s", v.Transport)
	}
	e.carrier.waitFor(sip.ACK, callID, time.Second)
	// BYE from the UDP callee reaches the TCP caller.
	if err := e.carrier.dialog(callID).Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("callee BYE: %v", err)
	}
	e.pbx.waitFor(sip.BYE, callID, time.Second)
	e.idle(t)

	in, code, err := e.carrier.invite(ctxT(t, 5*time.Second), e.gw, "+15550002")
	if err != nil || code != 200 {
		t.Fatalf("inbound call to TCP PBX: code %d err %v", code, err)
	}
	if err := in.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	e.pbx.waitFor(sip.BYE, callIDOf(in.InviteRequest), time.Second)
	e.idle(t)
}

// A next hop that never answers: Timer C gives the caller 408 and the slot
// is released.
func TestSilentNextHopReleasesSlot(t *testing.T) {
	e := newEnv(t, withCap(1), withTimerC(300*time.Millisecond))
	e.carrier.setOnCall(func(p *peer, req *sip.Request, tx sip.ServerTransaction) { <-tx.Done() })
	_, code, _ := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber)
	if code != 408 {
		t.Fatalf("caller got %d, want 408", code)
	}
	e.idle(t)
}

func TestInDialogRequestForUnknownDialogGets481(t *testing.T) {
	e := newEnv(t)
	host, port, _ := sip.ParseAddr(e.gw.Addr("udp"))
	bye := sip.NewRequest(sip.BYE, sip.Uri{User: outboundNumber, Host: host, Port: port})
	toParams := sip.NewParams()
	toParams.Add("tag", "nope")
	bye.AppendHeader(&sip.ToHeader{Address: sip.Uri{User: outboundNumber, Host: host}, Params: toParams})
	res, err := e.pbx.cli.Do(ctxT(t, 5*time.Second), bye)
	if err != nil || res.StatusCode != 481 {
		t.Fatalf("BYE for unknown dialog: %v %v, want 481", res, err)
	}
	if n := len(e.carrier.received(sip.BYE, "")); n != 0 {
		t.Fatal("BYE for unknown dialog was forwarded")
	}
}

// Malformed input is answered 400 or dropped, never crashes the gateway,
// and is never forwarded.
func TestMalformedInput(t *testing.T) {
	e := newEnv(t)
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(tenantIP)}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(e.gw.Addr("udp"))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	inputs := []string{
		"\x00\x01garbage\r\n\r\n",
		"INVITE sip:1@127.0.0.1 SIP/2.0\r\n\r\n", // no Via, no CSeq
		"INVITE sip:1@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.10:5999;branch=z9hG4bKx\r\nFrom: <sip:a@b>\r\nTo: <sip:1@c>\r\nCall-ID: m1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n", // no From tag
		"INVITE sip:1@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.10:5999;branch=z9hG4bKy\r\nCSeq: banana\r\nContent-Length: 99\r\n\r\n",
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKz\r\nCSeq: 1 INVITE\r\nCall-ID: r\r\nContent-Length: 0\r\n\r\n", // stray response
	}
	buf := make([]byte, 4096)
	for i, in := range inputs {
		if _, err := conn.Write([]byte(in)); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := conn.Read(buf)
		if err == nil && !strings.HasPrefix(string(buf[:n]), "SIP/2.0 400") && !strings.HasPrefix(string(buf[:n]), "SIP/2.0 100") {
			t.Errorf("input %d answered %q, want 400 or nothing", i, strings.SplitN(string(buf[:n]), "\r\n", 2)[0])
		}
	}
	if n := len(e.carrier.received(sip.INVITE, "")); n != 0 {
		t.Fatalf("malformed INVITE forwarded")
	}
	if n := e.obs.get(&e.obs.dropped, "unparsable"); n == 0 {
		t.Error("unparsable input not counted")
	}
	// The gateway still serves calls.
	sess, code, err := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber)
	if err != nil || code != 200 {
		t.Fatalf("call after malformed input: %d %v", code, err)
	}
	sess.Bye(ctxT(t, 5*time.Second))
	e.idle(t)
}
