package sip

import (
	"time"

	"github.com/tollgate/tollgate/admission"
)

// leaseTries bounds the lease-then-admit rounds of one INVITE (a round
// repeats only when another INVITE of the same tenant took the capacity
// just leased, or a CPS second ended in between).
const leaseTries = 4

// admit asks the engine; in a cluster, a lease miss (admission.CauseLease)
// leases more from the ledger and asks again. A ledger with nothing left
// turns the miss into the cap's own rejection (LeaseFull); a ledger that
// cannot be asked, or a miss that persists, is a final 503 cluster_lease
// with Retry-After, recorded as a call.rejected.
func (g *Gateway) admit(now time.Time, req *admission.CallRequest) admission.Ready {
	dec := g.adm.Admit(now, *req)
	for try := 0; g.leaser != nil && !dec.Admitted && dec.Rejection.Cause == admission.CauseLease && !req.LeaseFull.Has(dec.Rejection.Lease); try++ {
		g.apply(dec) // a miss still carries the step's effects
		dim := dec.Rejection.Lease
		full, err := g.leaser.Acquire(req.Tenant, dec.Rejection.User, dim, now)
		if err != nil || try == leaseTries {
			rej := dec.Rejection
			rej.RetryAfter = g.leaser.RetryAfter()
			dec = g.adm.Reject(now, *req, admission.CauseLease.String(), rej.Code)
			dec.Rejection = rej
			return dec
		}
		if full {
			req.LeaseFull = req.LeaseFull.With(dim)
		}
		now = g.now()
		dec = g.adm.Admit(now, *req)
	}
	return dec
}
