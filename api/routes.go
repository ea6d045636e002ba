package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/configs"
)

// scopeAllows reports whether a token of scope have may call a route that
// needs scope need: admin ⊇ settings ⊇ read, billing ⊇ read; need billing
// (the audit log) is granted to billing and admin.
func scopeAllows(have, need Scope) bool {
	switch need {
	case ScopeRead:
		return have.Valid()
	case ScopeSettings:
		return have == ScopeAdmin || have == ScopeSettings
	case ScopeBilling:
		return have == ScopeAdmin || have == ScopeBilling
	case ScopeAdmin:
		return have == ScopeAdmin
	}
	return false
}

// scopesGranted lists the scopes that satisfy need, strongest first.
func scopesGranted(need Scope) []Scope {
	var out []Scope
	for _, s := range []Scope{ScopeAdmin, ScopeSettings, ScopeBilling, ScopeRead} {
		if scopeAllows(s, need) {
			out = append(out, s)
		}
	}
	return out
}

// reasonBody is the body of suspend (reason required) and resume (reason
// optional).
type reasonBody struct {
	Reason string `json:"reason"`
}

// tokenBody is the body of a token creation.
type tokenBody struct {
	Name  string `json:"name"`
	Scope Scope  `json:"scope"`
}

// healthBody is the body of /healthz and /readyz.
type healthBody struct {
	Status string `json:"status"`
}

// limitsMergePatch stands for the JSON merge patch of a tenant's limit
// overrides in the OpenAPI document (the handler parses it by hand into a
// LimitsPatch).
type limitsMergePatch configs.Limits

// handlerFunc serves a JSON route: it returns the status and the body to
// encode (nil for none), or an error mapped by writeError.
type handlerFunc func(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error)

// queryParam is a query parameter a route accepts.
type queryParam struct {
	name   string
	schema map[string]any
	desc   string
}

// route is one row of the route table: it both registers the handler and
// describes the operation in the OpenAPI document.
type route struct {
	method  string
	path    string // ServeMux path pattern, {name} wildcards (also OpenAPI)
	scope   Scope  // needed scope; "" = no authentication
	id      string // OpenAPI operationId
	tag     string
	summary string
	query   []queryParam
	// request and response are the body types (nil: none). For a request
	// they are decoded strictly; for the document they name the schemas.
	request      reflect.Type
	contentType  string // request content type, default application/json
	bodyOptional bool   // the request body may be empty
	response     reflect.Type
	// responseType is the content type of a non-JSON response.
	responseType string
	// statuses are the documented statuses beyond 401/403 (added for
	// authenticated routes), 405 and 500.
	statuses []int
	handle   handlerFunc
	raw      func(s *server) http.Handler // a non-JSON handler (/metrics)
}

// routeType is reflect.TypeFor, spelled short for the table.
func routeType[T any]() reflect.Type { return reflect.TypeFor[T]() }

const mergePatchType = "application/merge-patch+json"

// routes is the route table of the server.
var routes = []route{
	// ---- health, metrics, document ----
	{method: "GET", path: "/healthz", id: "healthz", tag: "health", summary: "Liveness: the process serves HTTP.",
		response: routeType[healthBody](), statuses: []int{200}, handle: handleHealthz},
	{method: "GET", path: "/readyz", id: "readyz", tag: "health", summary: "Readiness: the backend (store, admission engine) is ready.",
		response: routeType[healthBody](), statuses: []int{200, 503}, handle: handleReadyz},
	{method: "GET", path: "/metrics", id: "metrics", tag: "health", summary: "Prometheus metrics (text exposition format).",
		responseType: "text/plain", statuses: []int{200}, raw: metricsHandler},
	{method: "GET", path: "/v1/openapi.json", id: "openapi", tag: "health", summary: "This OpenAPI 3.1 document.",
		responseType: "application/json", statuses: []int{200}, handle: handleOpenAPI},

	// ---- the token itself ----
	{method: "GET", path: "/v1/whoami", scope: ScopeRead, id: "whoami", tag: "tokens", summary: "The token of the request: its name, scope and the scopes it satisfies.",
		response: routeType[WhoAmI](), statuses: []int{200}, handle: handleWhoAmI},

	// ---- events ----
	{method: "GET", path: "/v1/events", scope: ScopeRead, id: "streamEvents", tag: "events",
		summary: "Server-sent events (text/event-stream): every usage event published from now on (with `since`, from that long ago), one `event: <type>` with `id:` and `data: <the event JSON as published>` each; a comment line every 15 s keeps the connection open. Fed by the NATS JetStream events stream (nats.enabled) or by the store's outbox otherwise, which keeps no history (`since` is then a 400); 503 when the server has no event source.",
		query: []queryParam{{name: "tenant", schema: map[string]any{"type": "string"}, desc: "only this tenant's events"},
			{name: "since", schema: map[string]any{"type": "string"}, desc: "also the events published this long ago and since (a duration up to 24h, e.g. 15m); needs the NATS events stream"}},
		responseType: "text/event-stream", statuses: []int{200, 400, 404, 503}, raw: eventsHandler},

	// ---- plans ----
	{method: "GET", path: "/v1/plans", scope: ScopeRead, id: "listPlans", tag: "plans", summary: "List the plans.",
		response: routeType[[]configs.Plan](), statuses: []int{200}, handle: handleListPlans},
	{method: "POST", path: "/v1/plans", scope: ScopeSettings, id: "createPlan", tag: "plans", summary: "Create a plan (409 if it exists).",
		request: routeType[configs.Plan](), response: routeType[configs.Plan](), statuses: []int{201, 400, 409}, handle: handleCreatePlan},
	{method: "GET", path: "/v1/plans/{name}", scope: ScopeRead, id: "getPlan", tag: "plans", summary: "Get a plan.",
		response: routeType[configs.Plan](), statuses: []int{200, 404}, handle: handleGetPlan},
	{method: "PUT", path: "/v1/plans/{name}", scope: ScopeSettings, id: "putPlan", tag: "plans", summary: "Create or replace a plan (the body's name must be the path's or empty).",
		request: routeType[configs.Plan](), response: routeType[configs.Plan](), statuses: []int{200, 201, 400}, handle: handlePutPlan},
	{method: "DELETE", path: "/v1/plans/{name}", scope: ScopeSettings, id: "deletePlan", tag: "plans", summary: "Delete a plan (409 while tenants use it).",
		statuses: []int{204, 404, 409}, handle: handleDeletePlan},

	// ---- tenants ----
	{method: "GET", path: "/v1/tenants", scope: ScopeRead, id: "listTenants", tag: "tenants", summary: "List the tenants with their status.",
		response: routeType[[]TenantView](), statuses: []int{200}, handle: handleListTenants},
	{method: "POST", path: "/v1/tenants", scope: ScopeAdmin, id: "createTenant", tag: "tenants", summary: "Create a tenant (409 if it exists).",
		request: routeType[configs.Tenant](), response: routeType[TenantView](), statuses: []int{201, 400, 409}, handle: handleCreateTenant},
	{method: "GET", path: "/v1/tenants/{name}", scope: ScopeRead, id: "getTenant", tag: "tenants", summary: "Get a tenant with its status.",
		response: routeType[TenantView](), statuses: []int{200, 404}, handle: handleGetTenant},
	{method: "PUT", path: "/v1/tenants/{name}", scope: ScopeAdmin, id: "putTenant", tag: "tenants", summary: "Create or replace a tenant (the body's name must be the path's or empty).",
		request: routeType[configs.Tenant](), response: routeType[TenantView](), statuses: []int{200, 201, 400}, handle: handlePutTenant},
	{method: "DELETE", path: "/v1/tenants/{name}", scope: ScopeAdmin, id: "deleteTenant", tag: "tenants", summary: "Delete a tenant (409 while it has active calls).",
		statuses: []int{204, 404, 409}, handle: handleDeleteTenant},

	// ---- limits ----
	{method: "GET", path: "/v1/tenants/{name}/limits", scope: ScopeRead, id: "getLimits", tag: "limits", summary: "Get a tenant's limit overrides and effective limits.",
		response: routeType[LimitsView](), statuses: []int{200, 404}, handle: handleGetLimits},
	{method: "PATCH", path: "/v1/tenants/{name}/limits", scope: ScopeSettings, id: "patchLimits", tag: "limits",
		summary: "Change a tenant's limit overrides with a JSON merge patch (RFC 7396): a value sets an override, null clears it (inherit the plan); destinations merge per class.",
		request: routeType[limitsMergePatch](), contentType: mergePatchType,
		response: routeType[LimitsView](), statuses: []int{200, 400, 404, 415}, handle: handlePatchLimits},
	{method: "POST", path: "/v1/tenants/{name}/reset", scope: ScopeSettings, id: "resetLimits", tag: "limits", summary: "Reset a tenant's limit overrides to the defaults.",
		response: routeType[LimitsView](), statuses: []int{200, 404}, handle: handleResetLimits},

	// ---- roles ----
	{method: "GET", path: "/v1/tenants/{name}/roles", scope: ScopeRead, id: "listRoles", tag: "roles", summary: "List a tenant's roles.",
		response: routeType[[]configs.Role](), statuses: []int{200, 404}, handle: handleGetRoles},
	{method: "PUT", path: "/v1/tenants/{name}/roles", scope: ScopeSettings, id: "putRoles", tag: "roles", summary: "Replace a tenant's roles (a JSON array).",
		request: routeType[[]configs.Role](), response: routeType[[]configs.Role](), statuses: []int{200, 400, 404}, handle: handlePutRoles},
	{method: "PUT", path: "/v1/tenants/{name}/roles/{role}", scope: ScopeSettings, id: "putRole", tag: "roles", summary: "Create or replace one role (the body's name must be the path's or empty).",
		request: routeType[configs.Role](), response: routeType[configs.Role](), statuses: []int{200, 201, 400, 404}, handle: handlePutRole},
	{method: "DELETE", path: "/v1/tenants/{name}/roles/{role}", scope: ScopeSettings, id: "deleteRole", tag: "roles", summary: "Delete one role.",
		statuses: []int{204, 404}, handle: handleDeleteRole},

	// ---- usage, status ----
	{method: "GET", path: "/v1/tenants/{name}/usage", scope: ScopeRead, id: "getUsage", tag: "usage", summary: "A tenant's usage in the current cycle.",
		response: routeType[UsageView](), statuses: []int{200, 404}, handle: handleUsage},
	{method: "POST", path: "/v1/tenants/{name}/suspend", scope: ScopeAdmin, id: "suspendTenant", tag: "tenants", summary: "Suspend a tenant (reason required).",
		request: routeType[reasonBody](), response: routeType[TenantStatus](), statuses: []int{200, 400, 404}, handle: handleSuspend},
	{method: "POST", path: "/v1/tenants/{name}/resume", scope: ScopeAdmin, id: "resumeTenant", tag: "tenants", summary: "Resume a suspended tenant (body optional).",
		request: routeType[reasonBody](), bodyOptional: true, response: routeType[TenantStatus](), statuses: []int{200, 400, 404}, handle: handleResume},

	// ---- calls ----
	{method: "GET", path: "/v1/calls", scope: ScopeRead, id: "listCalls", tag: "calls", summary: "List the active calls.",
		query:    []queryParam{{name: "tenant", schema: map[string]any{"type": "string"}, desc: "only this tenant's calls"}},
		response: routeType[[]CallView](), statuses: []int{200, 400, 404}, handle: handleCalls},
	{method: "DELETE", path: "/v1/calls/{id}", scope: ScopeAdmin, id: "hangupCall", tag: "calls", summary: "Hang up an active call (id: the admission id Call-ID;from-tag or the SIP Call-ID, percent-encoded).",
		statuses: []int{204, 404}, handle: handleHangup},

	// ---- flood protection ----
	{method: "GET", path: "/v1/blocked", scope: ScopeRead, id: "listBlocked", tag: "flood", summary: "List the source addresses blocked by flood protection, oldest block first.",
		response: routeType[[]BlockedView](), statuses: []int{200}, handle: handleBlocked},
	{method: "DELETE", path: "/v1/blocked/{ip}", scope: ScopeAdmin, id: "unblockSource", tag: "flood", summary: "Lift the block of a source address (IPv4 or IPv6; 404 when it is not blocked).",
		statuses: []int{204, 400, 404}, handle: handleUnblock},

	// ---- cluster ----
	{method: "GET", path: "/v1/cluster", scope: ScopeRead, id: "getCluster", tag: "cluster", summary: "The cluster's nodes with their last lease renewal, and the leases each holds per tenant and dimension.",
		query:    []queryParam{{name: "tenant", schema: map[string]any{"type": "string"}, desc: "only this tenant's ledger entries"}},
		response: routeType[ClusterStatus](), statuses: []int{200}, handle: handleCluster},
	{method: "POST", path: "/v1/cluster/nodes/{node}/release", scope: ScopeAdmin, id: "releaseNode", tag: "cluster", summary: "Give back everything a node that will not come back holds in the ledger (409 while its heartbeat is fresh).",
		response: routeType[ClusterReleased](), statuses: []int{200, 404, 409, 503}, handle: handleReleaseNode},

	// ---- audit ----
	{method: "GET", path: "/v1/audit", scope: ScopeBilling, id: "listAudit", tag: "audit", summary: "The audit log, newest first.",
		query: []queryParam{
			{name: "tenant", schema: map[string]any{"type": "string"}, desc: "only this tenant's entries"},
			{name: "from", schema: map[string]any{"type": "string", "format": "date-time"}, desc: "entries at or after (RFC 3339)"},
			{name: "to", schema: map[string]any{"type": "string", "format": "date-time"}, desc: "entries before (RFC 3339)"},
			{name: "limit", schema: map[string]any{"type": "integer", "minimum": 1, "maximum": maxAuditLimit}, desc: "at most this many entries (default 100)"},
		},
		response: routeType[[]AuditEntry](), statuses: []int{200, 400}, handle: handleAudit},

	// ---- tokens ----
	{method: "GET", path: "/v1/tokens", scope: ScopeAdmin, id: "listTokens", tag: "tokens", summary: "List the API tokens (without secrets).",
		response: routeType[[]TokenView](), statuses: []int{200}, handle: handleListTokens},
	{method: "POST", path: "/v1/tokens", scope: ScopeAdmin, id: "createToken", tag: "tokens", summary: "Create a token; its secret is in the answer only.",
		request: routeType[tokenBody](), response: routeType[NewToken](), statuses: []int{201, 400, 409}, handle: handleCreateToken},
	{method: "DELETE", path: "/v1/tokens/{name}", scope: ScopeAdmin, id: "deleteToken", tag: "tokens", summary: "Delete a token.",
		statuses: []int{204, 404}, handle: handleDeleteToken},

	// ---- apply ----
	{method: "POST", path: "/v1/apply", scope: ScopeAdmin, id: "apply", tag: "apply", summary: "Create or update the plans and tenants of a declarative document.",
		query:   []queryParam{{name: "dry_run", schema: map[string]any{"type": "boolean"}, desc: "report the changes without making them"}},
		request: routeType[ApplyDoc](), response: routeType[ApplyResult](), statuses: []int{200, 400}, handle: handleApply},
}

// maxAuditLimit is the largest audit ?limit=.
const maxAuditLimit = 1000

// ---- health ----

func handleHealthz(s *server, w http.ResponseWriter, r *http.Request, _ Principal) (int, any, error) {
	return http.StatusOK, healthBody{Status: "ok"}, nil
}

func handleReadyz(s *server, w http.ResponseWriter, r *http.Request, _ Principal) (int, any, error) {
	if err := s.b.Ready(); err != nil {
		return 0, nil, &statusError{status: http.StatusServiceUnavailable, code: "not_ready", msg: "not ready: " + err.Error()}
	}
	return http.StatusOK, healthBody{Status: "ready"}, nil
}

func handleOpenAPI(s *server, w http.ResponseWriter, r *http.Request, _ Principal) (int, any, error) {
	return http.StatusOK, json.RawMessage(s.doc), nil
}

// ---- whoami ----

func handleWhoAmI(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	var grants []Scope
	for _, sc := range []Scope{ScopeAdmin, ScopeSettings, ScopeBilling, ScopeRead} {
		if scopeAllows(p.Scope, sc) {
			grants = append(grants, sc)
		}
	}
	return http.StatusOK, WhoAmI{Name: p.Name, Scope: p.Scope, Grants: emptyIfNil(grants)}, nil
}

// ---- plans ----

func handleListPlans(s *server, w http.ResponseWriter, r *http.Request, _ Principal) (int, any, error) {
	plans, err := s.b.ListPlans(r.Context())
	return http.StatusOK, emptyIfNil(plans), err
}

func handleCreatePlan(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	var plan configs.Plan
	if err := decodeBody(r, &plan, true); err != nil {
		return 0, nil, err
	}
	if _, err := s.b.PutPlan(r.Context(), p.Name, plan, true); err != nil {
		return 0, nil, err
	}
	out, err := s.b.GetPlan(r.Context(), plan.Name)
	w.Header().Set("Location", "/v1/plans/"+url.PathEscape(plan.Name))
	return http.StatusCreated, out, err
}

func handleGetPlan(s *server, w http.ResponseWriter, r *http.Request, _ Principal) (int, any, error) {
	plan, err := s.b.GetPlan(r.Context(), r.PathValue("name"))
	return http.StatusOK, plan, err
}

func handlePutPlan(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	var plan configs.Plan
	if err := decodeBody(r, &plan, true); err != nil {
		return 0, nil, err
	}
	if err := matchName(&plan.Name, r.PathValue("name"), "plan"); err != nil {
		return 0, nil, err
	}
	created, err := s.b.PutPlan(r.Context(), p.Name, plan, false)
	if err != nil {
		return 0, nil, err
	}
	out, err := s.b.GetPlan(r.Context(), plan.Name)
	return createdStatus(w, created, "/v1/plans/"+url.PathEscape(plan.Name)), out, err
}

func handleDeletePlan(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	return http.StatusNoContent, nil, s.b.DeletePlan(r.Context(), p.Name, r.PathValue("name"))
}

// ---- tenants ----

func handleListTenants(s *server, w http.ResponseWriter, r *http.Request, _ Principal) (int, any, error) {
	ts, err := s.b.ListTenants(r.Context())
	return http.StatusOK, emptyIfNil(ts), err
}

func handleCreateTenant(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	var t configs.Tenant
	if err := decodeBody(r, &t, true); err != nil {
		return 0, nil, err
	}
	if _, err := s.b.PutTenant(r.Context(), p.Name, t, true); err != nil {
		return 0, nil, err
	}
	out, err := s.b.GetTenant(r.Context(), t.Name)
	w.Header().Set("Location", "/v1/tenants/"+url.PathEscape(t.Name))
	return http.StatusCreated, out, err
}

func handleGetTenant(s *server, w http.ResponseWriter, r *http.Request, _ Principal) (int, any, error) {
	t, err := s.b.GetTenant(r.Context(), r.PathValue("name"))
	return http.StatusOK, t, err
}

func handlePutTenant(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	var t configs.Tenant
	if err := decodeBody(r, &t, true); err != nil {
		return 0, nil, err
	}
	if err := matchName(&t.Name, r.PathValue("name"), "tenant"); err != nil {
		return 0, nil, err
	}
	created, err := s.b.PutTenant(r.Context(), p.Name, t, false)
	if err != nil {
		return 0, nil, err
	}
	out, err := s.b.GetTenant(r.Context(), t.Name)
	return createdStatus(w, created, "/v1/tenants/"+url.PathEscape(t.Name)), out, err
}

func handleDeleteTenant(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	return http.StatusNoContent, nil, s.b.DeleteTenant(r.Context(), p.Name, r.PathValue("name"))
}

// ---- limits ----

func handleGetLimits(s *server, w http.ResponseWriter, r *http.Request, _ Principal) (int, any, error) {
	l, err := s.b.GetLimits(r.Context(), r.PathValue("name"))
	return http.StatusOK, l, err
}

func handlePatchLimits(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := strings.Cut(ct, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
		if mt != mergePatchType && mt != "application/json" {
			return 0, nil, &statusError{status: http.StatusUnsupportedMediaType, code: "invalid",
				msg: fmt.Sprintf("Content-Type must be %s or application/json, got %q", mergePatchType, ct)}
		}
	}
	data, err := readBody(r, true)
	if err != nil {
		return 0, nil, err
	}
	patch, err := parseLimitsPatch(data)
	if err != nil {
		return 0, nil, err
	}
	l, err := s.b.PatchLimits(r.Context(), p.Name, r.PathValue("name"), patch)
	return http.StatusOK, l, err
}

func handleResetLimits(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	l, err := s.b.ResetLimits(r.Context(), p.Name, r.PathValue("name"))
	return http.StatusOK, l, err
}

// ---- roles ----

func handleGetRoles(s *server, w http.ResponseWriter, r *http.Request, _ Principal) (int, any, error) {
	roles, err := s.b.GetRoles(r.Context(), r.PathValue("name"))
	return http.StatusOK, emptyIfNil(roles), err
}

func handlePutRoles(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	var roles []configs.Role
	if err := decodeBody(r, &roles, true); err != nil {
		return 0, nil, err
	}
	if roles == nil {
		return 0, nil, &FieldError{Message: "expected a JSON array of roles, got null"}
	}
	out, err := s.b.PutRoles(r.Context(), p.Name, r.PathValue("name"), roles)
	return http.StatusOK, emptyIfNil(out), err
}

func handlePutRole(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	var role configs.Role
	if err := decodeBody(r, &role, true); err != nil {
		return 0, nil, err
	}
	if err := matchName(&role.Name, r.PathValue("role"), "role"); err != nil {
		return 0, nil, err
	}
	tenant := r.PathValue("name")
	created, err := s.b.PutRole(r.Context(), p.Name, tenant, role)
	if err != nil {
		return 0, nil, err
	}
	roles, err := s.b.GetRoles(r.Context(), tenant)
	if err != nil {
		return 0, nil, err
	}
	for _, ro := range roles {
		if ro.Name == role.Name {
			role = ro
		}
	}
	return createdStatus(w, created, "/v1/tenants/"+url.PathEscape(tenant)+"/roles/"+url.PathEscape(role.Name)), role, nil
}

func handleDeleteRole(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	return http.StatusNoContent, nil, s.b.DeleteRole(r.Context(), p.Name, r.PathValue("name"), r.PathValue("role"))
}

// ---- usage, status ----

func handleUsage(s *server, w http.ResponseWriter, r *http.Request, _ Principal) (int, any, error) {
	u, err := s.b.Usage(r.Context(), r.PathValue("name"))
	return http.StatusOK, u, err
}

func handleSuspend(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	var body reasonBody
	if err := decodeBody(r, &body, false); err != nil {
		return 0, nil, err
	}
	if strings.TrimSpace(body.Reason) == "" {
		return 0, nil, &FieldError{Field: "reason", Message: "required: why the tenant is suspended (kept in the audit log)"}
	}
	st, err := s.b.Suspend(r.Context(), p.Name, r.PathValue("name"), body.Reason)
	return http.StatusOK, st, err
}

func handleResume(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	var body reasonBody
	if err := decodeBody(r, &body, false); err != nil {
		return 0, nil, err
	}
	st, err := s.b.Resume(r.Context(), p.Name, r.PathValue("name"), body.Reason)
	return http.StatusOK, st, err
}

// ---- calls ----

func handleCalls(s *server, w http.ResponseWriter, r *http.Request, _ Principal) (int, any, error) {
	calls, err := s.b.Calls(r.Context(), r.URL.Query().Get("tenant"))
	return http.StatusOK, emptyIfNil(calls), err
}

func handleHangup(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	return http.StatusNoContent, nil, s.b.Hangup(r.Context(), p.Name, r.PathValue("id"))
}

// ---- flood protection ----

func handleBlocked(s *server, w http.ResponseWriter, r *http.Request, _ Principal) (int, any, error) {
	b, err := s.b.Blocked(r.Context())
	return http.StatusOK, emptyIfNil(b), err
}

func handleUnblock(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	ip, err := ParseSourceIP(r.PathValue("ip"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, s.b.Unblock(r.Context(), p.Name, ip)
}

// ParseSourceIP parses the address of a blocked source as the API takes
// it: an IPv4 or IPv6 address without zone; an IPv4-mapped IPv6 address
// is its IPv4 form. A bad one is a *FieldError naming field "ip".
func ParseSourceIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, &FieldError{Field: "ip", Message: fmt.Sprintf("expected an IPv4 or IPv6 address such as 192.0.2.1 or 2001:db8::1, got %q", s)}
	}
	return a.Unmap(), nil
}

// ---- cluster ----

func handleCluster(s *server, w http.ResponseWriter, r *http.Request, _ Principal) (int, any, error) {
	st, err := s.b.Cluster(r.Context(), r.URL.Query().Get("tenant"))
	return http.StatusOK, st, err
}

func handleReleaseNode(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	out, err := s.b.ReleaseNode(r.Context(), p.Name, r.PathValue("node"))
	return http.StatusOK, out, err
}

// ---- audit ----

func handleAudit(s *server, w http.ResponseWriter, r *http.Request, _ Principal) (int, any, error) {
	q := r.URL.Query()
	aq := AuditQuery{Tenant: q.Get("tenant")}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"from", &aq.From}, {"to", &aq.To}} {
		if v := q.Get(t.name); v != "" {
			at, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return 0, nil, &FieldError{Field: t.name, Message: fmt.Sprintf("expected an RFC 3339 time such as 2026-11-01T00:00:00Z, got %q", v)}
			}
			*t.dst = at
		}
	}
	if !aq.From.IsZero() && !aq.To.IsZero() && aq.To.Before(aq.From) {
		return 0, nil, &FieldError{Field: "to", Message: "must not be before from"}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditLimit {
			return 0, nil, &FieldError{Field: "limit", Message: fmt.Sprintf("expected an integer 1..%d, got %q", maxAuditLimit, v)}
		}
		aq.Limit = n
	}
	entries, err := s.b.Audit(r.Context(), aq)
	return http.StatusOK, emptyIfNil(entries), err
}

// ---- tokens ----

func handleListTokens(s *server, w http.ResponseWriter, r *http.Request, _ Principal) (int, any, error) {
	ts, err := s.b.ListTokens(r.Context())
	return http.StatusOK, emptyIfNil(ts), err
}

func handleCreateToken(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	var body tokenBody
	if err := decodeBody(r, &body, true); err != nil {
		return 0, nil, err
	}
	if body.Name == "" {
		return 0, nil, &FieldError{Field: "name", Message: "required"}
	}
	if !body.Scope.Valid() {
		return 0, nil, &FieldError{Field: "scope", Message: fmt.Sprintf("must be admin, settings, billing or read, got %q", body.Scope)}
	}
	t, err := s.b.CreateToken(r.Context(), p.Name, body.Name, body.Scope)
	if err != nil {
		return 0, nil, err
	}
	w.Header().Set("Location", "/v1/tokens/"+url.PathEscape(t.Name))
	return http.StatusCreated, t, nil
}

func handleDeleteToken(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	return http.StatusNoContent, nil, s.b.DeleteToken(r.Context(), p.Name, r.PathValue("name"))
}

// ---- apply ----

func handleApply(s *server, w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	dry := false
	if v := r.URL.Query().Get("dry_run"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return 0, nil, &FieldError{Field: "dry_run", Message: fmt.Sprintf("expected true or false, got %q", v)}
		}
		dry = b
	}
	var doc ApplyDoc
	if err := decodeBody(r, &doc, true); err != nil {
		return 0, nil, err
	}
	res, err := s.b.Apply(r.Context(), p.Name, doc, dry)
	if res.Changes == nil {
		res.Changes = []ApplyChange{}
	}
	return http.StatusOK, res, err
}

// ---- helpers ----

// matchName fills an empty body name from the path, or rejects a
// different one.
func matchName(body *string, path, kind string) error {
	if *body == "" {
		*body = path
		return nil
	}
	if *body != path {
		return &FieldError{Field: "name", Message: fmt.Sprintf("%s name %q does not match the path's %q (omit it or make them equal)", kind, *body, path)}
	}
	return nil
}

// createdStatus is 201 with a Location when created, else 200.
func createdStatus(w http.ResponseWriter, created bool, location string) int {
	if created {
		w.Header().Set("Location", location)
		return http.StatusCreated
	}
	return http.StatusOK
}

func emptyIfNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ---- limits merge patch ----

// limitsField describes one field of configs.Limits for the merge patch.
type limitsField struct {
	index int    // in configs.Limits
	name  string // JSON name
	kind  string // count, burst, pct, money, bool, destinations
}

// limitsFields are the patchable fields, by JSON name.
var limitsFields = func() map[string]limitsField {
	t := reflect.TypeFor[configs.Limits]()
	out := map[string]limitsField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := jsonName(f)
		kind := "count"
		switch {
		case name == "cps_burst":
			kind = "burst"
		case name == "alert_threshold_pct":
			kind = "pct"
		case f.Type == reflect.TypeFor[*configs.Money]():
			kind = "money"
		case f.Type == reflect.TypeFor[*bool]():
			kind = "bool"
		case f.Type.Kind() == reflect.Map:
			kind = "destinations"
		case f.Type != reflect.TypeFor[*int64]():
			panic("api: unexpected limits field " + f.Name)
		}
		out[name] = limitsField{index: i, name: name, kind: kind}
	}
	return out
}()

// parseLimitsPatch parses a JSON merge patch of a tenant's limit overrides.
func parseLimitsPatch(data []byte) (LimitsPatch, error) {
	var patch LimitsPatch
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		if _, ok := err.(*json.UnmarshalTypeError); ok || obj == nil && string(bytes.TrimSpace(data)) == "null" {
			return patch, &FieldError{Message: "expected a JSON object (a merge patch of the limit overrides)"}
		}
		return patch, syntaxError(data, err)
	}
	if obj == nil {
		return patch, &FieldError{Message: "expected a JSON object (a merge patch of the limit overrides), got null"}
	}
	set := reflect.ValueOf(&patch.Set).Elem()
	for _, name := range keysSorted(obj) {
		v := obj[name]
		f, ok := limitsFields[name]
		if !ok {
			return patch, &FieldError{Field: name, Message: fmt.Sprintf("unknown field %q (limits are %s)", name, strings.Join(keysSorted(limitsFields), ", "))}
		}
		if string(v) == "null" {
			patch.Clear = append(patch.Clear, name)
			continue
		}
		switch f.kind {
		case "count", "burst", "pct":
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				msg := map[string]string{
					"count": "expected an integer (-1 unlimited, 0 blocked, N cap) or null",
					"burst": "expected an integer (the bucket size, >= 1) or null",
					"pct":   "expected an integer percentage 1..100 or null",
				}[f.kind]
				return patch, &FieldError{Field: name, Message: msg + ", got " + describeJSON(v)}
			}
			set.Field(f.index).Set(reflect.ValueOf(&n))
		case "money":
			var m configs.Money
			if err := m.UnmarshalJSON(v); err != nil || !(v[0] == '"' || v[0] == '-' || v[0] >= '0' && v[0] <= '9') {
				msg := "expected an amount of money (a number or a string such as 500 or \"12.5\"; -1 unlimited, 0 blocked) or null"
				if err != nil && (v[0] == '"' || v[0] == '-' || v[0] >= '0' && v[0] <= '9') {
					msg += ": " + err.Error()
				} else {
					msg += ", got " + describeJSON(v)
				}
				return patch, &FieldError{Field: name, Message: msg}
			}
			set.Field(f.index).Set(reflect.ValueOf(&m))
		case "bool":
			var b bool
			if err := json.Unmarshal(v, &b); err != nil {
				return patch, &FieldError{Field: name, Message: "expected true, false or null, got " + describeJSON(v)}
			}
			set.Field(f.index).Set(reflect.ValueOf(&b))
		case "destinations":
			var classes map[string]json.RawMessage
			if err := json.Unmarshal(v, &classes); err != nil {
				return patch, &FieldError{Field: name, Message: "expected an object mapping destination classes to true, false or null (or null to clear them all), got " + describeJSON(v)}
			}
			for _, class := range keysSorted(classes) {
				cv := classes[class]
				if string(cv) == "null" {
					patch.ClearDestinations = append(patch.ClearDestinations, class)
					continue
				}
				var b bool
				if err := json.Unmarshal(cv, &b); err != nil {
					return patch, &FieldError{Field: name + "." + class, Message: "expected true (enabled), false (disabled) or null (inherit), got " + describeJSON(cv)}
				}
				if patch.Set.Destinations == nil {
					patch.Set.Destinations = map[string]bool{}
				}
				patch.Set.Destinations[class] = b
			}
		}
	}
	return patch, nil
}

// describeJSON names the kind of a JSON value for messages.
func describeJSON(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "nothing"
	}
	switch c := v[0]; {
	case c == '"':
		return "a string"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	default:
		return "the number " + string(v)
	}
}
