package store

import (
	"sort"
	"time"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/configs"
)

// pending coalesces the steps and batches given to a Committer since its
// last commit into one Batch. Adding a step or batch after another has
// the effect, once sealed and applied, of applying them one after the
// other (given Apply's order: deletes, then puts, then appends).
type pending struct {
	plans      map[string]*configs.Plan // nil: delete
	tenantPuts map[string]configs.Tenant
	tenantDels map[string]bool   // deleted (cascade) before the put, if any
	tokens     map[string]*Token // nil: delete
	counters   map[string]admission.TenantRecord
	users      map[userKey]admission.UserRecord
	callPuts   map[string]admission.CallRecord
	callDels   map[string]bool
	days       map[dayKeyT]*DayDelta
	events     []admission.Event
	audit      []AuditEntry
	unrepl     map[[2]string]Unreplicated // kind, name: the last mark
	seeded     bool
	n          int // items added (a size hint for Stats)
}

type userKey struct{ tenant, user string }

type dayKeyT struct {
	tenant string
	day    int64 // Unix seconds of the UTC midnight
}

func newPending() *pending {
	return &pending{
		plans:      map[string]*configs.Plan{},
		tenantPuts: map[string]configs.Tenant{},
		tenantDels: map[string]bool{},
		tokens:     map[string]*Token{},
		counters:   map[string]admission.TenantRecord{},
		users:      map[userKey]admission.UserRecord{},
		callPuts:   map[string]admission.CallRecord{},
		callDels:   map[string]bool{},
		days:       map[dayKeyT]*DayDelta{},
		unrepl:     map[[2]string]Unreplicated{},
	}
}

// empty reports whether nothing was added.
func (p *pending) empty() bool { return p.n == 0 }

func (p *pending) putCall(c admission.CallRecord) {
	c.Payload = cloneBytes(c.Payload)
	delete(p.callDels, c.CallID)
	p.callPuts[c.CallID] = c
}

func (p *pending) delCall(id string) {
	delete(p.callPuts, id)
	p.callDels[id] = true
}

func (p *pending) addDay(d DayDelta) {
	day := utcDay(d.Day)
	k := dayKeyT{d.Tenant, day.Unix()}
	cur := p.days[k]
	if cur == nil {
		cur = &DayDelta{Tenant: d.Tenant, Day: day}
		p.days[k] = cur
	}
	cur.Calls += d.Calls
	cur.Seconds += d.Seconds
	cur.Spend += d.Spend
	cur.EmergencySeconds += d.EmergencySeconds
}

// addStep adds an engine step, copying what it keeps.
func (p *pending) addStep(st *admission.Step) {
	p.n += len(st.Tenants) + len(st.Users) + len(st.Answered) + len(st.Released) + len(st.Charges) + len(st.Events)
	for _, r := range st.Tenants {
		p.counters[r.Tenant] = r
	}
	for _, r := range st.Users {
		p.users[userKey{r.Tenant, r.User}] = r
	}
	for _, c := range st.Answered {
		p.putCall(c)
	}
	for _, id := range st.Released {
		p.delCall(id)
	}
	for _, c := range st.Charges {
		d := DayDelta{Tenant: c.Tenant, Day: c.At, Spend: c.Spend}
		if c.Final {
			d.Calls = 1
		}
		if c.Emergency {
			d.EmergencySeconds = c.Seconds
		} else {
			d.Seconds = c.Seconds
		}
		p.addDay(d)
	}
	p.events = append(p.events, st.Events...)
}

// addBatch adds b in Apply's order. b must not be used by the caller
// afterwards (its plans, tenants, calls and audit entries are kept).
func (p *pending) addBatch(b *Batch) {
	p.n += batchLen(b)
	if b.Seeded {
		p.n++
	}
	for _, name := range b.DeletePlans {
		p.plans[name] = nil
	}
	for _, name := range b.DeleteTenants {
		p.tenantDels[name] = true
		delete(p.tenantPuts, name)
		delete(p.counters, name)
		for k := range p.users {
			if k.tenant == name {
				delete(p.users, k)
			}
		}
		for id, c := range p.callPuts {
			if c.Tenant == name {
				delete(p.callPuts, id)
			}
		}
	}
	for _, name := range b.DeleteTokens {
		p.tokens[name] = nil
	}
	for _, id := range b.DeleteCalls {
		p.delCall(id)
	}
	for i := range b.PutPlans {
		p.plans[b.PutPlans[i].Name] = &b.PutPlans[i]
	}
	for _, t := range b.PutTenants {
		p.tenantPuts[t.Name] = t
	}
	for i := range b.PutTokens {
		p.tokens[b.PutTokens[i].Name] = &b.PutTokens[i]
	}
	for _, r := range b.Counters {
		p.counters[r.Tenant] = r
	}
	for _, r := range b.Users {
		p.users[userKey{r.Tenant, r.User}] = r
	}
	for _, c := range b.PutCalls {
		p.putCall(c)
	}
	for _, d := range b.Days {
		p.addDay(d)
	}
	p.events = append(p.events, b.Events...)
	p.audit = append(p.audit, b.Audit...)
	for _, u := range b.Unreplicated {
		p.unrepl[[2]string{u.Kind, u.Name}] = u
	}
	p.seeded = p.seeded || b.Seeded
}

// seal returns the coalesced batch with the clock at; p is not used
// afterwards. Keyed items come sorted by key.
func (p *pending) seal(at time.Time) *Batch {
	b := &Batch{At: at, Events: p.events, Audit: p.audit, Seeded: p.seeded}
	for _, name := range sortedKeys(p.plans) {
		if pl := p.plans[name]; pl == nil {
			b.DeletePlans = append(b.DeletePlans, name)
		} else {
			b.PutPlans = append(b.PutPlans, *pl)
		}
	}
	b.DeleteTenants = sortedKeys(p.tenantDels)
	for _, name := range sortedKeys(p.tenantPuts) {
		b.PutTenants = append(b.PutTenants, p.tenantPuts[name])
	}
	for _, name := range sortedKeys(p.tokens) {
		if t := p.tokens[name]; t == nil {
			b.DeleteTokens = append(b.DeleteTokens, name)
		} else {
			b.PutTokens = append(b.PutTokens, *t)
		}
	}
	for _, name := range sortedKeys(p.counters) {
		b.Counters = append(b.Counters, p.counters[name])
	}
	for _, r := range p.users {
		b.Users = append(b.Users, r)
	}
	sort.Slice(b.Users, func(i, j int) bool {
		x, y := b.Users[i], b.Users[j]
		return x.Tenant < y.Tenant || x.Tenant == y.Tenant && x.User < y.User
	})
	b.DeleteCalls = sortedKeys(p.callDels)
	for _, id := range sortedKeys(p.callPuts) {
		b.PutCalls = append(b.PutCalls, p.callPuts[id])
	}
	for _, d := range p.days {
		b.Days = append(b.Days, *d)
	}
	sort.Slice(b.Days, func(i, j int) bool {
		x, y := b.Days[i], b.Days[j]
		return x.Tenant < y.Tenant || x.Tenant == y.Tenant && x.Day.Before(y.Day)
	})
	for _, u := range p.unrepl {
		b.Unreplicated = append(b.Unreplicated, u)
	}
	sort.Slice(b.Unreplicated, func(i, j int) bool {
		x, y := b.Unreplicated[i], b.Unreplicated[j]
		return x.Kind < y.Kind || x.Kind == y.Kind && x.Name < y.Name
	})
	return b
}

func sortedKeys[V any](m map[string]V) []string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// batchLen is the number of items of b in Apply's order (Seeded and At
// not counted).
func batchLen(b *Batch) int {
	return len(b.DeletePlans) + len(b.DeleteTenants) + len(b.DeleteTokens) + len(b.DeleteCalls) +
		len(b.PutPlans) + len(b.PutTenants) + len(b.PutTokens) + len(b.Counters) + len(b.Users) +
		len(b.PutCalls) + len(b.Days) + len(b.Events) + len(b.Audit) + len(b.Unreplicated)
}

// splitBatch cuts b, in Apply's order, into a first part of n items
// (whose At is zero: it leaves the clock) and the rest (with b's At and
// Seeded). Applying first then rest has the effect of applying b.
func splitBatch(b *Batch, n int) (first, rest *Batch) {
	first, rest = &Batch{}, &Batch{At: b.At, Seeded: b.Seeded}
	first.DeletePlans, rest.DeletePlans = cutSlice(b.DeletePlans, &n)
	first.DeleteTenants, rest.DeleteTenants = cutSlice(b.DeleteTenants, &n)
	first.DeleteTokens, rest.DeleteTokens = cutSlice(b.DeleteTokens, &n)
	first.DeleteCalls, rest.DeleteCalls = cutSlice(b.DeleteCalls, &n)
	first.PutPlans, rest.PutPlans = cutSlice(b.PutPlans, &n)
	first.PutTenants, rest.PutTenants = cutSlice(b.PutTenants, &n)
	first.PutTokens, rest.PutTokens = cutSlice(b.PutTokens, &n)
	first.Counters, rest.Counters = cutSlice(b.Counters, &n)
	first.Users, rest.Users = cutSlice(b.Users, &n)
	first.PutCalls, rest.PutCalls = cutSlice(b.PutCalls, &n)
	first.Days, rest.Days = cutSlice(b.Days, &n)
	first.Events, rest.Events = cutSlice(b.Events, &n)
	first.Audit, rest.Audit = cutSlice(b.Audit, &n)
	first.Unreplicated, rest.Unreplicated = cutSlice(b.Unreplicated, &n)
	return first, rest
}

func cutSlice[T any](src []T, n *int) (a, z []T) {
	k := min(*n, len(src))
	*n -= k
	return src[:k:k], src[k:]
}
