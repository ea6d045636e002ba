package control

import (
	"context"
	"net/netip"
	"time"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/internal/pike"
	"github.com/tollgate/tollgate/store"
)

// Flood is the SIP edge's flood limiter as the control service sees it: a
// *pike.Limiter, shared with the gateway that feeds it. It is set after
// construction (SetFlood); without one no source is ever blocked.
type Flood interface {
	// Blocked lists the sources blocked at now, oldest block first.
	Blocked(now time.Time) []pike.Entry
	// Unblock lifts the block of ip at now; false if it is not blocked.
	Unblock(ip netip.Addr, now time.Time) (pike.Entry, bool)
}

var _ Flood = (*pike.Limiter)(nil)

// SetFlood connects the flood limiter.
func (s *Service) SetFlood(f Flood) {
	s.edgeMu.Lock()
	s.flood = f
	s.edgeMu.Unlock()
}

func (s *Service) getFlood() Flood {
	s.edgeMu.RLock()
	defer s.edgeMu.RUnlock()
	return s.flood
}

// blockedView is a pike entry as the API shows it.
func blockedView(e pike.Entry) api.BlockedView {
	return api.BlockedView{
		IP: e.IP.String(), Known: e.Known, Since: e.Since.UTC(), Until: e.Until.UTC(),
		Reason: e.Reason, Rate: e.Rate, Burst: e.Burst, Dropped: e.Dropped,
	}
}

// Blocked lists the sources blocked by flood protection now, oldest block
// first; none without a flood limiter.
func (s *Service) Blocked(_ context.Context) ([]api.BlockedView, error) {
	out := []api.BlockedView{}
	f := s.getFlood()
	if f == nil {
		return out, nil
	}
	for _, e := range f.Blocked(s.now()) {
		out = append(out, blockedView(e))
	}
	return out, nil
}

// Unblock lifts the block of a source address, with an audit entry
// (action source.unblock, resource blocked/<ip>, before: the block).
func (s *Service) Unblock(_ context.Context, actor string, ip netip.Addr) error {
	ip = ip.Unmap()
	f := s.getFlood()
	if f == nil {
		return opErr(api.ErrNotFound, "source %s is not blocked", ip)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	e, ok := f.Unblock(ip, now)
	if !ok {
		return opErr(api.ErrNotFound, "source %s is not blocked", ip)
	}
	s.log.Info().Str("ip", ip.String()).Str("actor", actor).Time("was_blocked_until", e.Until).Msg("source unblocked")
	entry := audit(now, actor, "source.unblock", "blocked/"+ip.String(), "", blockedView(e), nil)
	return s.submit(&store.Batch{Audit: []store.AuditEntry{entry}}, now)
}
