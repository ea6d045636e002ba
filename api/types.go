// Package api is tollgate's admin HTTP API (JSON under /v1), its
// Prometheus metrics, the health endpoints and a Go client for the CLI.
// The handlers are thin: every operation is a Backend method.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/tollgate/tollgate/cluster"
	"github.com/tollgate/tollgate/configs"
)

// Scope is what a bearer token may do. Scopes mirror the product's access
// roles:
//
//	admin     everything, including tokens, tenants create/delete, suspend,
//	          resume, hang up, unblock, apply
//	settings  read + write plans, tenant limits (patch, reset) and roles
//	billing   read + the audit log (read-only)
//	read      read plans, tenants, limits, roles, usage, calls, blocked
//	          sources
type Scope string

// The scopes.
const (
	ScopeAdmin    Scope = "admin"
	ScopeSettings Scope = "settings"
	ScopeBilling  Scope = "billing"
	ScopeRead     Scope = "read"
)

// Valid reports whether s is one of the four scopes.
func (s Scope) Valid() bool {
	switch s {
	case ScopeAdmin, ScopeSettings, ScopeBilling, ScopeRead:
		return true
	}
	return false
}

// Principal is an authenticated token: its name (the audit actor) and scope.
type Principal struct {
	Name  string `json:"name"`
	Scope Scope  `json:"scope"`
}

// WhoAmI is the authenticated token: its name, its scope and every scope
// it satisfies (admin: all four; settings: settings and read; billing:
// billing and read; read: read), so that a client can tell which
// operations it may call.
type WhoAmI struct {
	Name   string  `json:"name"`
	Scope  Scope   `json:"scope"`
	Grants []Scope `json:"grants"`
}

// Errors a Backend returns (wrapped with detail); the handlers map them to
// HTTP statuses.
var (
	ErrNotFound = errors.New("not found") // 404
	ErrConflict = errors.New("conflict")  // 409: exists, in use
	ErrNotReady = errors.New("not ready") // 503
)

// FieldError is a bad value in a request: 400 with the field named.
// Field is a JSON path in the request body, e.g. "limits.max_parallel_calls",
// "sources[1]", "roles[0].patterns[2]"; "" when the whole body is wrong.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// ErrorBody is the JSON of every error response:
// {"error":{"code":"invalid","field":"limits.max_parallel_calls","message":"..."}}.
// Codes: unauthorized (401), forbidden (403), not_found (404), invalid (400),
// conflict (409), not_ready (503), internal (500), method_not_allowed (405).
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the content of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// TenantStatus is the live state of a tenant.
type TenantStatus struct {
	Suspended     bool   `json:"suspended"`
	SuspendReason string `json:"suspend_reason,omitempty"`
	SuspendCap    string `json:"suspend_cap,omitempty"` // cap of an automatic suspension
	// SuspendedSince is when the suspension began, kept with it (for a
	// suspension stored before that, as the audit log records it; absent
	// in the audit entries themselves).
	SuspendedSince *time.Time `json:"suspended_since,omitempty"`
	ActiveCalls    int64      `json:"active_calls"`
}

// TenantView is a tenant as stored (the config shape) plus its status.
type TenantView struct {
	configs.Tenant
	Status TenantStatus `json:"status"`
	// Provisioning is the use of the tenant's provisioning caps
	// (max_dids, max_users).
	Provisioning *Provisioning `json:"provisioning,omitempty"`
}

// Provisioning is a tenant's use of its provisioning caps: the DID
// prefixes assigned to it (dids) against max_dids, the distinct users on
// its roles against max_users.
type Provisioning struct {
	DIDs  ProvisionedCount `json:"dids"`
	Users ProvisionedCount `json:"users"`
}

// ProvisionedCount is how many are assigned (Used) and the effective cap
// (Limit: override, else plan; -1 unlimited). Used may exceed Limit when
// the cap was lowered after they were assigned (caps are not
// retroactive).
type ProvisionedCount struct {
	Used  int64 `json:"used"`
	Limit int64 `json:"limit"`
}

// LimitsView is a tenant's limits: its overrides (null = inherit) and the
// effective values (override, else plan; -1 unlimited).
type LimitsView struct {
	Tenant    string         `json:"tenant"`
	Plan      string         `json:"plan"`
	Overrides configs.Limits `json:"overrides"`
	Effective configs.Limits `json:"effective"`
}

// LimitsPatch is a parsed JSON merge patch (RFC 7396) of a tenant's
// overrides: a field with a value sets the override, a field with null
// clears it (inherit the plan again), an absent field is unchanged.
// "destinations" merges per class: {"premium": true} sets one class,
// {"premium": null} clears that class's override, "destinations": null
// clears all of them.
type LimitsPatch struct {
	Set               configs.Limits // fields present with a value (non-nil)
	Clear             []string       // JSON names of fields present as null, e.g. "max_parallel_calls", "destinations"
	ClearDestinations []string       // destination classes present as null
}

// CapUsage is the usage of one cap in the current cycle. Used and Limit are
// in Unit: "calls" (max_parallel_calls: active now), "minutes" (decimal, up
// to 3 places), "money" (decimal). Limit is null when unlimited; Percent is
// null when unlimited, else used/limit*100 (limit 0: 100).
type CapUsage struct {
	Cap     string       `json:"cap"`
	Unit    string       `json:"unit"`
	Used    json.Number  `json:"used"`
	Limit   *json.Number `json:"limit"`
	Percent *float64     `json:"percent"`
	// ExhaustsAt is the instant the budget runs out at the current burn
	// rate (the calls drawing on it now keep going), as the admission
	// engine computes it for its cut-off timer: minutes and spend caps
	// only; null when unlimited, when nothing draws on it or when it does
	// not run out this cycle. At or before now: already exhausted.
	ExhaustsAt *time.Time `json:"exhausts_at,omitempty"`
}

// DayUsage is the usage of one UTC day: calls settled that day (a call
// counts on the day it ends), billed seconds and cost.
type DayUsage struct {
	Date             string        `json:"date"` // YYYY-MM-DD
	Calls            int64         `json:"calls"`
	Seconds          float64       `json:"seconds"`
	Spend            configs.Money `json:"spend"`
	EmergencySeconds float64       `json:"emergency_seconds"`
}

// UserUsage is a user on a role with a minutes cap.
type UserUsage struct {
	User    string       `json:"user"`
	Role    string       `json:"role"`
	Minutes json.Number  `json:"minutes"`
	Limit   *json.Number `json:"limit"`
	Percent *float64     `json:"percent"`
	// ExhaustsAt is when the user's minutes run out at the current burn
	// rate (as CapUsage.ExhaustsAt); null when nothing draws on them.
	ExhaustsAt *time.Time `json:"exhausts_at,omitempty"`
}

// UsageView is a tenant's usage in the current cycle (calendar month UTC).
type UsageView struct {
	Tenant     string       `json:"tenant"`
	CycleStart time.Time    `json:"cycle_start"`
	CycleEnd   time.Time    `json:"cycle_end"`
	Status     TenantStatus `json:"status"`
	// AlertThresholdPct is the effective alert_threshold_pct: the
	// percentage of a cap at which usage.threshold is emitted.
	AlertThresholdPct int64       `json:"alert_threshold_pct"`
	Caps              []CapUsage  `json:"caps"`
	Users             []UserUsage `json:"users"`
	Days              []DayUsage  `json:"days"` // days of the cycle with usage, oldest first
	// Cluster is the tenant's usage over every gateway of the cluster
	// (cluster.enabled only): each node's billed seconds, spend and calls
	// up, and the sums. The caps above are this node's.
	Cluster *ClusterUsage `json:"cluster,omitempty"`
}

// ClusterUsage is a tenant's usage over the cluster (package cluster).
type ClusterUsage = cluster.TenantUsage

// CallView is an active call.
type CallView struct {
	ID        string     `json:"id"`      // admission id: Call-ID;from-tag (use it to hang up)
	CallID    string     `json:"call_id"` // SIP Call-ID
	Tenant    string     `json:"tenant"`
	Direction string     `json:"direction"` // inbound | outbound
	Caller    string     `json:"caller"`
	Callee    string     `json:"callee"`
	State     string     `json:"state"` // early | confirmed
	Started   time.Time  `json:"started"`
	Answered  *time.Time `json:"answered,omitempty"`
	Seconds   float64    `json:"seconds"` // billed so far (0 until answered)
	// Media holds the RTP meters of an anchored call (media.mode relay):
	// what the caller sent and what the callee sent. Absent otherwise.
	Media *CallMedia `json:"media,omitempty"`
}

// CallMedia are an anchored call's meters, one per party.
type CallMedia struct {
	Caller MediaLeg `json:"caller"`
	Callee MediaLeg `json:"callee"`
}

// MediaLeg is what one party sent, read from RTP headers.
type MediaLeg struct {
	Packets     uint64     `json:"packets"`
	Bytes       uint64     `json:"bytes"`
	Lost        int64      `json:"lost"`      // expected minus received (RFC 3550); negative with duplicates
	JitterMs    float64    `json:"jitter_ms"` // interarrival jitter (RFC 3550)
	SSRCChanges uint64     `json:"ssrc_changes"`
	Dropped     uint64     `json:"dropped"`   // from a source other than the latched one
	Malformed   uint64     `json:"malformed"` // not RTP, not relayed
	RTCPPackets uint64     `json:"rtcp_packets"`
	FirstPacket *time.Time `json:"first_packet,omitempty"`
	LastPacket  *time.Time `json:"last_packet,omitempty"`
}

// ClusterStatus is GET /v1/cluster: the nodes of the cluster with their
// last lease renewal, and the ledger entries (a tenant's cap in one
// dimension) with the leases each node holds in them. It is the
// ledger's own neutral type (package cluster).
type ClusterStatus = cluster.Status

// ClusterReleased is what POST /v1/cluster/nodes/{node}/release gave
// back to the ledger.
type ClusterReleased = cluster.Released

// BlockedView is a source address blocked by flood protection.
type BlockedView struct {
	IP string `json:"ip"`
	// Known: the address was a carrier's or tenant's source when it was
	// blocked.
	Known bool      `json:"known"`
	Since time.Time `json:"since"` // when it was blocked
	Until time.Time `json:"until"` // when the block ends
	// Reason is the setting it exceeded, sip.flood.rate (known sources)
	// or sip.flood.unknown_rate: "rate" | "unknown_rate"; Rate and Burst
	// are that limit.
	Reason  string  `json:"reason"`
	Rate    float64 `json:"rate"`
	Burst   int     `json:"burst"`
	Dropped uint64  `json:"dropped"` // requests dropped during this block
}

// AuditQuery selects audit entries: Tenant "" = all; zero From/To = open;
// Limit 0 = 100 (max 1000). Newest first.
type AuditQuery struct {
	Tenant string
	From   time.Time
	To     time.Time
	Limit  int
}

// AuditEntry is one change: who (token name, or "system" for automatic
// suspensions, "config" for the seed), when, what, before and after.
type AuditEntry struct {
	ID       string          `json:"id"`
	At       time.Time       `json:"at"`
	Actor    string          `json:"actor"`
	Action   string          `json:"action"`   // e.g. plan.create, plan.update, plan.delete, tenant.create, tenant.update, tenant.delete, limits.update, limits.reset, roles.update, tenant.suspend, tenant.resume, call.hangup, source.unblock, token.create, token.delete, seed
	Resource string          `json:"resource"` // e.g. "plans/standard", "tenants/demo", "tenants/demo/limits", "calls/<id>", "blocked/<ip>", "tokens/ops"
	Tenant   string          `json:"tenant,omitempty"`
	Before   json.RawMessage `json:"before,omitempty"`
	After    json.RawMessage `json:"after,omitempty"`
	Reason   string          `json:"reason,omitempty"`
	// For automatic suspensions: the cap that triggered it, the usage and
	// the limit (seconds for minutes caps, micro-units for spend).
	Cap   string `json:"cap,omitempty"`
	Usage int64  `json:"usage,omitempty"`
	Limit int64  `json:"limit,omitempty"`
}

// TokenView is a token without its secret.
type TokenView struct {
	Name    string    `json:"name"`
	Scope   Scope     `json:"scope"`
	Created time.Time `json:"created"`
}

// NewToken is the answer to a token creation: the secret is shown once.
type NewToken struct {
	TokenView
	Token string `json:"token"`
}

// ApplyDoc is a declarative document: plans and tenants to create or
// update (the config file's shapes). Objects not in the document are left
// alone.
type ApplyDoc struct {
	Plans   []configs.Plan   `json:"plans" yaml:"plans"`
	Tenants []configs.Tenant `json:"tenants" yaml:"tenants"`
}

// ApplyChange is one object apply creates or updates (unchanged objects
// are listed with Op "unchanged"). Diff lists the changed fields as
// "path: before -> after" lines.
type ApplyChange struct {
	Kind string   `json:"kind"` // plan | tenant
	Name string   `json:"name"`
	Op   string   `json:"op"` // create | update | unchanged
	Diff []string `json:"diff,omitempty"`
}

// ApplyResult is what apply did (or, dry run, would do).
type ApplyResult struct {
	DryRun  bool          `json:"dry_run"`
	Changes []ApplyChange `json:"changes"`
}

// Backend carries out the API's operations. actor is the authenticated
// token's name (for the audit log). Errors: wrap ErrNotFound / ErrConflict
// / ErrNotReady, or return a *FieldError whose Field is a path in the
// request body.
type Backend interface {
	Authenticate(token string) (Principal, bool)
	Ready() error

	ListPlans(ctx context.Context) ([]configs.Plan, error)
	GetPlan(ctx context.Context, name string) (configs.Plan, error)
	// PutPlan creates (create=true: ErrConflict if it exists) or creates or
	// replaces the plan; it reports whether it was created.
	PutPlan(ctx context.Context, actor string, p configs.Plan, create bool) (created bool, err error)
	DeletePlan(ctx context.Context, actor, name string) error // ErrConflict while tenants use it

	ListTenants(ctx context.Context) ([]TenantView, error)
	GetTenant(ctx context.Context, name string) (TenantView, error)
	PutTenant(ctx context.Context, actor string, t configs.Tenant, create bool) (created bool, err error)
	DeleteTenant(ctx context.Context, actor, name string) error // ErrConflict while it has active calls

	GetLimits(ctx context.Context, tenant string) (LimitsView, error)
	PatchLimits(ctx context.Context, actor, tenant string, p LimitsPatch) (LimitsView, error)
	ResetLimits(ctx context.Context, actor, tenant string) (LimitsView, error)

	GetRoles(ctx context.Context, tenant string) ([]configs.Role, error)
	PutRoles(ctx context.Context, actor, tenant string, roles []configs.Role) ([]configs.Role, error)
	PutRole(ctx context.Context, actor, tenant string, role configs.Role) (created bool, err error)
	DeleteRole(ctx context.Context, actor, tenant, role string) error

	Usage(ctx context.Context, tenant string) (UsageView, error)

	Calls(ctx context.Context, tenant string) ([]CallView, error) // tenant "" = all
	Hangup(ctx context.Context, actor, id string) error           // id: CallView.ID or the SIP Call-ID

	// Blocked lists the sources blocked by flood protection now, oldest
	// block first.
	Blocked(ctx context.Context) ([]BlockedView, error)
	// Unblock lifts the block of ip (ErrNotFound when it is not blocked).
	Unblock(ctx context.Context, actor string, ip netip.Addr) error

	// Cluster is the cluster ledger as this node sees it (tenant "" =
	// every tenant); Enabled false without cluster.enabled.
	Cluster(ctx context.Context, tenant string) (ClusterStatus, error)
	// ReleaseNode gives back to the ledger everything node holds, for a
	// node that will not come back: ErrConflict while its heartbeat is
	// fresh (or it is this node), ErrNotFound for a node the ledger does
	// not know or without a cluster, ErrNotReady while the ledger cannot
	// be reached.
	ReleaseNode(ctx context.Context, actor, node string) (ClusterReleased, error)

	Suspend(ctx context.Context, actor, tenant, reason string) (TenantStatus, error)
	Resume(ctx context.Context, actor, tenant, reason string) (TenantStatus, error)

	Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error)

	ListTokens(ctx context.Context) ([]TokenView, error)
	CreateToken(ctx context.Context, actor, name string, scope Scope) (NewToken, error)
	DeleteToken(ctx context.Context, actor, name string) error

	Apply(ctx context.Context, actor string, doc ApplyDoc, dryRun bool) (ApplyResult, error)

	// ActiveByTenant feeds the active-calls gauge at scrape time.
	ActiveByTenant() map[string]int64
}

// errorf builds a FieldError.
func errorf(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}
