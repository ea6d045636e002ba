// Package control is the service behind tollgate's admin API: it owns the
// admission runner, the store (through a group committer) and every
// operator operation (plans, tenants, limits, roles, usage, calls,
// suspensions, audit log, tokens, declarative apply). It implements
// api.Backend.
//
// Every mutating operation runs under one mutex, in this order: validate
// (the whole effective config with the change), change the admission
// engine, hand the engine's effects to the SIP edge (cuts, events, the
// re-armed deadline timer), commit the store change together with its
// audit entry, and finally tell the edge to rebuild its routing when
// tenants changed.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/cluster"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/internal/callrec"
	"github.com/tollgate/tollgate/store"
)

// Edge is the SIP gateway as the control service sees it. It is set after
// construction (SetEdge): the gateway is built from Service.Config.
type Edge interface {
	// Calls lists the active calls of tenant ("" = all).
	Calls(tenant string) []callrec.Call
	// Hangup tears down the call with the admission id (Call-ID;from-tag)
	// or SIP Call-ID id; false if no such call.
	Hangup(id string) bool
	// SetRouting rebuilds classification and routing after carriers or
	// tenants changed.
	SetRouting(cfg *configs.Config) error
	// Effects carries out every field of an engine Ready: events, cuts,
	// and the deadline timer, re-armed only for a newer generation.
	Effects(rd admission.Ready)
	// Ready is nil when the gateway listens and is not draining.
	Ready() error
}

// Options are the service's settings beyond the config file.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger is the parent logger (the service scopes it).
	Logger zerolog.Logger
	// Env looks up the environment variables named by api.tokens[].token_env;
	// nil means os.Getenv.
	Env func(string) string
	// OnCommit receives the latency of every group commit (metrics).
	// Optional.
	OnCommit func(d time.Duration)
	// OnEvents is called after a group commit that appended events to
	// the outbox (the NATS publisher's wake-up). It must not block.
	// Optional.
	OnEvents func()
}

// MinTokenLen is the minimum length of a token secret given through
// token_env.
const MinTokenLen = 16

// Service is the control service. Create it with Open; it is safe for
// concurrent use.
type Service struct {
	log    zerolog.Logger
	now    func() time.Time
	st     store.Store
	runner *admission.Runner
	commit committer
	base   configs.Config // the config file (Plans and Tenants unused)

	restored   []admission.CallRecord
	restoredAt time.Time // the store clock the restored calls were billed up to
	restoreOut []admission.Ready

	// Configuration replication (SetReplicator; replicate.go), guarded by
	// mu: applying is set while a change from another node is applied.
	repl       Replicator
	replNode   string
	replWanted bool
	applying   bool
	unsynced   map[[2]string]store.Unreplicated // kind, name: changed here, not yet published (also in the store)
	replStop   chan struct{}

	edgeMu  sync.RWMutex // guards edge, flood and cluster
	edge    Edge
	flood   Flood
	cluster Cluster

	// mu serialises mutating operations and guards plans, tenants and eff.
	mu      sync.RWMutex
	plans   map[string]configs.Plan
	tenants map[string]configs.Tenant
	eff     *configs.Config

	tokMu  sync.RWMutex
	tokens map[string]store.Token // by name
	byHash map[string]api.Principal

	closeMu  sync.Mutex
	closed   bool
	closeErr error
}

var _ api.Backend = (*Service)(nil)

// Open loads the store (seeding it from cfg on first start), builds the
// admission engine from the effective config (cfg's SIP, admission and
// carrier sections with the stored plans and tenants), restores counters
// and suspensions, settles the calls that were active at the last stop
// (Restored) and starts the group committer. cfg must have been through
// ApplyDefaults and Validate (as configs.Load does). Open does not take
// ownership of st: Close stops the committer but leaves st open.
func Open(cfg *configs.Config, st store.Store, opts Options) (*Service, error) {
	if cfg == nil || st == nil {
		return nil, errors.New("control: open: nil config or store")
	}
	s := &Service{
		log:     opts.Logger.With().Str("component", "control").Logger(),
		now:     opts.Now,
		st:      st,
		base:    *cfg,
		plans:   make(map[string]configs.Plan),
		tenants: make(map[string]configs.Tenant),
		tokens:  make(map[string]store.Token),
		byHash:  make(map[string]api.Principal),
	}
	s.base.Plans, s.base.Tenants = nil, nil
	if s.now == nil {
		s.now = time.Now
	}
	env := opts.Env
	if env == nil {
		env = os.Getenv
	}

	state, err := st.Load()
	if err != nil {
		return nil, fmt.Errorf("control: load store: %w", err)
	}
	// The file's tokens are resolved on every start: a token_env token
	// follows the environment, not the secret of the first start.
	cfgTokens, err := ConfigTokens(cfg, env, s.now())
	if err != nil {
		return nil, err
	}
	if !state.Seeded {
		if err := seed(cfg, st, cfgTokens, s.now()); err != nil {
			return nil, err
		}
		if state, err = st.Load(); err != nil {
			return nil, fmt.Errorf("control: load store: %w", err)
		}
	} else {
		logDrift(cfg, state, s.log)
		b, toks := syncTokens(cfg, state.Tokens, cfgTokens, s.now(), s.log)
		if b != nil {
			// No At: the store clock (what restored calls are billed up
			// to) stays that of the last stop.
			if err := st.Apply(b); err != nil {
				return nil, fmt.Errorf("control: update tokens from the config file: %w", err)
			}
			state.Unreplicated = mergeMarks(state.Unreplicated, b.Unreplicated)
		}
		state.Tokens = toks
	}
	for _, p := range state.Plans {
		// Normalised as the file's are: a plan stored by an earlier
		// version lacks the limits added since (max_dids, max_users),
		// which mean what an unset plan limit means.
		s.plans[p.Name] = normalisePlan(p)
	}
	for _, t := range state.Tenants {
		s.tenants[t.Name] = t.Clone()
	}
	if len(state.Unreplicated) > 0 {
		s.unsynced = map[[2]string]store.Unreplicated{}
		for _, u := range state.Unreplicated {
			s.unsynced[[2]string{u.Kind, u.Name}] = u
		}
	}
	for _, t := range state.Tokens {
		s.tokens[t.Name] = t
		s.byHash[t.Hash] = api.Principal{Name: t.Name, Scope: api.Scope(t.Scope)}
	}

	eff := s.build(s.sortedPlans(), s.sortedTenants())
	if err := eff.Validate(); err != nil {
		return nil, fmt.Errorf("the stored plans and tenants do not fit the config file (put back what they use in the file, or move store.data_dir away to seed again from the file): %w", err)
	}
	s.eff = eff

	settings, err := eff.AdmissionSettings()
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	s.runner = admission.NewRunner(admission.NewEngine(settings))
	at := state.Clock
	if at.IsZero() {
		at = s.now()
	}
	for _, p := range eff.Plans {
		if _, err := s.runner.UpsertPlan(at, p.AdmissionPlan()); err != nil {
			return nil, fmt.Errorf("control: plan %q: %w", p.Name, err)
		}
	}
	for _, t := range eff.Tenants {
		if _, err := s.runner.UpsertTenant(at, t.AdmissionTenant()); err != nil {
			return nil, fmt.Errorf("control: tenant %q: %w", t.Name, err)
		}
	}

	s.commit = newCommitter(st, cfg, s.now, s.log, opts.OnCommit, opts.OnEvents)
	s.runner.SetJournal(&journal{s: s})

	rd, err := s.runner.Restore(admission.Snapshot{At: at, Tenants: state.Counters, Users: state.Users, Calls: state.Calls})
	if err != nil {
		_ = s.commit.Close()
		return nil, fmt.Errorf("control: restore: %w", err)
	}
	s.restoreOut = append(s.restoreOut, rd)
	// Bring the engine from the store clock to now: a restart in a later
	// month rolls the cycle over (lifting monthly-cap suspensions) here,
	// not at the first call.
	if now := s.now(); now.After(at) {
		s.restoreOut = append(s.restoreOut, s.runner.Tick(now))
	}
	s.restored, s.restoredAt = state.Calls, at
	if err := s.commit.Flush(); err != nil {
		_ = s.commit.Close()
		return nil, fmt.Errorf("control: restore: %w", err)
	}
	if n := len(state.Calls); n > 0 {
		s.log.Warn().Int("calls", n).Time("billed_to", at).Msg("calls active at the last stop settled")
	}
	return s, nil
}

// seed writes the config file's plans, tenants and tokens (resolved by
// ConfigTokens) into an empty store, with one audit entry per object.
func seed(cfg *configs.Config, st store.Store, tokens []store.Token, now time.Time) error {
	plans, tenants := normalise(cfg.Plans, cfg.Tenants)
	b := &store.Batch{At: now, PutPlans: plans, PutTenants: tenants, PutTokens: tokens, Seeded: true}
	for _, p := range plans {
		b.Audit = append(b.Audit, store.AuditEntry{At: now, Actor: "config", Action: "seed",
			Resource: "plans/" + p.Name, After: mustJSON(p)})
	}
	for _, t := range tenants {
		b.Audit = append(b.Audit, store.AuditEntry{At: now, Actor: "config", Action: "seed",
			Resource: "tenants/" + t.Name, Tenant: t.Name, After: mustJSON(t)})
	}
	for _, tok := range tokens {
		b.Audit = append(b.Audit, store.AuditEntry{At: now, Actor: "config", Action: "seed",
			Resource: "tokens/" + tok.Name, After: mustJSON(tokenView(tok))})
	}
	if err := st.Apply(b); err != nil {
		return fmt.Errorf("control: seed store: %w", err)
	}
	return nil
}

// normalise deep-copies plans and tenants and fills their defaults as
// loading a config file does (unset plan limits, rate increments, PBX
// transport).
func normalise(plans []configs.Plan, tenants []configs.Tenant) ([]configs.Plan, []configs.Tenant) {
	c := configs.Config{}
	for _, p := range plans {
		c.Plans = append(c.Plans, p.Clone())
	}
	for _, t := range tenants {
		c.Tenants = append(c.Tenants, t.Clone())
	}
	c.ApplyDefaults()
	return c.Plans, c.Tenants
}

func normalisePlan(p configs.Plan) configs.Plan {
	ps, _ := normalise([]configs.Plan{p}, nil)
	return ps[0]
}

func normaliseTenant(t configs.Tenant) configs.Tenant {
	_, ts := normalise(nil, []configs.Tenant{t})
	return ts[0]
}

// build returns the effective config: the file's sections with plans and
// tenants.
func (s *Service) build(plans []configs.Plan, tenants []configs.Tenant) *configs.Config {
	c := s.base
	c.Plans, c.Tenants = plans, tenants
	return &c
}

func (s *Service) sortedPlans() []configs.Plan {
	out := make([]configs.Plan, 0, len(s.plans))
	for _, p := range s.plans {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *Service) sortedTenants() []configs.Tenant {
	out := make([]configs.Tenant, 0, len(s.tenants))
	for _, t := range s.tenants {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Runner returns the admission runner (give it to the SIP gateway).
func (s *Service) Runner() *admission.Runner { return s.runner }

// Config returns the current effective config: the file's SIP, admission
// and carrier sections with the stored plans and tenants. The caller must
// not modify it.
func (s *Service) Config() *configs.Config {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.eff
}

// Restored returns the calls that were active at the last stop. They are
// already billed (up to the store clock) and released; the gateway tears
// them down.
func (s *Service) Restored() []admission.CallRecord { return s.restored }

// RestoredAt is the store clock at start: the instant the restored calls
// were billed up to (the last acknowledged commit before the stop).
func (s *Service) RestoredAt() time.Time { return s.restoredAt }

// RestoreOutput returns the effects of the restore and of bringing the
// engine from the store clock to the present (e.g. resumptions at a cycle
// rollover) for the gateway to carry out.
func (s *Service) RestoreOutput() []admission.Ready { return s.restoreOut }

// SetEdge connects the SIP gateway.
func (s *Service) SetEdge(e Edge) {
	s.edgeMu.Lock()
	s.edge = e
	s.edgeMu.Unlock()
}

func (s *Service) getEdge() Edge {
	s.edgeMu.RLock()
	defer s.edgeMu.RUnlock()
	return s.edge
}

// effects hands engine effects to the edge, if any.
func (s *Service) effects(rd admission.Ready) {
	// Even a Ready without events or cuts goes to the edge: a changed
	// limit may have moved the next deadline, and the edge re-arms its
	// timer from the newest Ready.
	if e := s.getEdge(); e != nil {
		e.Effects(rd)
	}
}

// routing hands the new effective config to the edge, if any.
func (s *Service) routing() {
	e := s.getEdge()
	if e == nil {
		return
	}
	if err := e.SetRouting(s.eff); err != nil {
		s.log.Error().Err(err).Msg("rebuild routing")
	}
}

// Close waits for pending audit entries, flushes the committer and stops
// it. It does not close the store. Calling it again returns the first
// result.
func (s *Service) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return s.closeErr
	}
	s.closed = true
	s.mu.Lock()
	if s.replStop != nil {
		close(s.replStop)
		s.replStop = nil
	}
	s.mu.Unlock()
	s.closeErr = s.commit.Close()
	return s.closeErr
}

// Ready is nil when the gateway is connected, listening and not draining.
func (s *Service) Ready() error {
	e := s.getEdge()
	if e == nil {
		return opErr(api.ErrNotReady, "the SIP gateway is not started")
	}
	if err := e.Ready(); err != nil {
		// "sip: draining" reads "the SIP gateway is draining".
		return &opError{msg: "the SIP gateway is " + strings.TrimPrefix(err.Error(), "sip: "), kind: api.ErrNotReady, cause: err}
	}
	return nil
}

// ActiveByTenant returns the active calls of every tenant.
func (s *Service) ActiveByTenant() map[string]int64 {
	names := s.runner.Tenants()
	out := make(map[string]int64, len(names))
	for _, n := range names {
		out[n] = s.runner.Active(n)
	}
	return out
}

// Audit returns audit entries matching q, newest first.
func (s *Service) Audit(_ context.Context, q api.AuditQuery) ([]api.AuditEntry, error) {
	es, err := s.st.Audit(store.AuditQuery{Tenant: q.Tenant, From: q.From, To: q.To, Limit: q.Limit})
	if err != nil {
		return nil, fmt.Errorf("control: audit: %w", err)
	}
	out := make([]api.AuditEntry, len(es))
	for i, e := range es {
		out[i] = auditView(e)
	}
	return out, nil
}

// auditView is an audit record's wire form.
func auditView(e store.AuditEntry) api.AuditEntry {
	return api.AuditEntry{ID: e.ID, At: e.At, Actor: e.Actor, Action: e.Action, Resource: e.Resource, Tenant: e.Tenant,
		Before: e.Before, After: e.After, Reason: e.Reason, Cap: e.Cap, Usage: e.Usage, Limit: e.Limit}
}

// submit commits b (stamped with now) and waits until it is durable.
// In cluster mode the replicated objects b writes, and extra (changes
// that are not objects of the store: an operator's suspension), are
// then published; b carries their marks (store.Unreplicated), so they
// are published even after a restart until one publication succeeds.
func (s *Service) submit(b *store.Batch, now time.Time, extra ...cluster.Change) error {
	if b.At.IsZero() {
		b.At = now
	}
	var cs []cluster.Change
	if s.replicating() {
		cs = append(batchChanges(b), extra...)
		for _, c := range cs {
			b.Unreplicated = append(b.Unreplicated, store.Unreplicated{Kind: c.Kind, Name: c.Name, Actor: c.Actor, At: now})
		}
	}
	if err := s.commit.Submit(b); err != nil {
		return fmt.Errorf("control: commit: %w", err)
	}
	s.publish(now, cs...)
	return nil
}

// audit builds an audit entry at now.
func audit(now time.Time, actor, action, resource, tenant string, before, after any) store.AuditEntry {
	e := store.AuditEntry{At: now, Actor: actor, Action: action, Resource: resource, Tenant: tenant}
	if before != nil {
		e.Before = mustJSON(before)
	}
	if after != nil {
		e.After = mustJSON(after)
	}
	return e
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("control: marshal %T: %v", v, err))
	}
	return b
}

// status is the live state of a tenant.
func (s *Service) status(tenant string) api.TenantStatus {
	susp, reason, capName := s.runner.SuspendState(tenant)
	return api.TenantStatus{Suspended: susp, SuspendReason: reason, SuspendCap: capName, ActiveCalls: s.runner.Active(tenant)}
}

// sinceScan is how many of a tenant's newest audit entries viewStatus
// reads to find when its suspension began, for a suspension restored from
// a record that did not keep the instant.
const sinceScan = 100

// viewStatus is status with SuspendedSince: the engine's (durable with the
// suspension), else the newest tenant.suspend entry of the tenant in the
// audit log. For the API's views, not for audit entries.
func (s *Service) viewStatus(tenant string) api.TenantStatus {
	st := s.status(tenant)
	if !st.Suspended {
		return st
	}
	if at := s.runner.SuspendedSince(tenant); !at.IsZero() {
		at = at.UTC()
		st.SuspendedSince = &at
		return st
	}
	entries, err := s.st.Audit(store.AuditQuery{Tenant: tenant, Limit: sinceScan})
	if err != nil {
		return st
	}
	for _, e := range entries {
		if e.Action == "tenant.suspend" {
			at := e.At.UTC()
			st.SuspendedSince = &at
			break
		}
		if e.Action == "tenant.resume" {
			break
		}
	}
	return st
}

// journal is the runner's Journal: every step goes to the committer;
// automatic suspensions also get an audit entry.
type journal struct{ s *Service }

// Record implements admission.Journal. The audit entries of automatic
// suspensions go into the same batch as the step that suspended.
func (j *journal) Record(st *admission.Step) {
	var entries []store.AuditEntry
	for _, ev := range st.Events {
		if ev.Type != admission.EventSuspended || ev.Cap == "" {
			continue
		}
		at := ev.At
		if at.IsZero() {
			at = st.At
		}
		entries = append(entries, store.AuditEntry{
			At: at, Actor: "system", Action: "tenant.suspend",
			Resource: "tenants/" + ev.Tenant, Tenant: ev.Tenant, Reason: ev.Reason,
			Cap: ev.Cap, Usage: ev.Value, Limit: ev.Limit,
		})
	}
	j.s.commit.RecordWith(st, entries)
}
