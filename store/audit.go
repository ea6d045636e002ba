package store

import (
	"encoding/json"
	"time"
)

// The audit log's records, as the store keeps them (l/ keys, JSON). The
// API has its own wire types (api.AuditEntry, api.AuditQuery), which the
// control service maps these to: the store does not depend on the API.

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
