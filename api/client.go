package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/configs"
)

// ErrUnreachable wraps the errors of requests that got no HTTP response
// (connection refused, DNS failure, timeout, TLS failure): the admin API
// could not be reached. The underlying *url.Error stays reachable with
// errors.As.
var ErrUnreachable = errors.New("admin API unreachable")

// APIError is a non-2xx answer of the admin API (the decoded ErrorBody).
type APIError struct {
	Status  int    // HTTP status
	Code    string // ErrorDetail.Code: unauthorized, forbidden, not_found, invalid, conflict, ...
	Field   string // ErrorDetail.Field: the offending field of the request, "" if none
	Message string // ErrorDetail.Message
}

// Error formats the error as "404 not_found: tenant \"x\" not found", with
// the field for field errors: "400 invalid: max_parallel_calls: must be ...".
func (e *APIError) Error() string {
	msg := e.Message
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, msg)
}

// clientMaxResponse bounds a response body the client reads.
const clientMaxResponse = 64 << 20

// Client is a Go client of the admin API. It is safe for concurrent use.
type Client struct {
	base  string // without a trailing slash
	token string
	hc    *http.Client
}

// NewClient returns a client of the admin API at baseURL (e.g.
// "http://127.0.0.1:8080"; a path prefix is kept) that authenticates with
// the bearer token. hc nil means http.DefaultClient.
func NewClient(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: hc}
}

// BaseURL returns the base URL the client sends requests to.
func (c *Client) BaseURL() string { return c.base }

// clientRequest is one API call.
type clientRequest struct {
	method      string
	path        string // escaped, starting with /v1
	query       url.Values
	body        any // marshalled to JSON; nil: no body
	contentType string
	out         any // decoded from a 2xx body when non-nil and the body is not empty
}

// do sends r and returns the response status. Non-2xx answers are
// *APIError; transport failures wrap ErrUnreachable.
func (c *Client) do(ctx context.Context, r clientRequest) (int, error) {
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		data, err := json.Marshal(r.body)
		if err != nil {
			return 0, fmt.Errorf("api: encoding %s %s: %w", r.method, r.path, err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return 0, fmt.Errorf("api: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		ct := r.contentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return 0, err // cancelled by the caller: not the server's fault
		}
		return 0, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, clientMaxResponse))
	if err != nil {
		if ctx.Err() != nil {
			return resp.StatusCode, err
		}
		return resp.StatusCode, fmt.Errorf("%w: reading the answer to %s %s: %w", ErrUnreachable, r.method, r.path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, clientDecodeError(resp.StatusCode, data)
	}
	if r.out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, r.out); err != nil {
			return resp.StatusCode, fmt.Errorf("api: decoding the answer to %s %s: %w", r.method, r.path, err)
		}
	}
	return resp.StatusCode, nil
}

// clientDecodeError turns an error answer into an *APIError; an answer that is
// not an ErrorBody (a proxy's page) keeps the status and a short excerpt.
func clientDecodeError(status int, data []byte) *APIError {
	var eb ErrorBody
	if err := json.Unmarshal(data, &eb); err == nil && eb.Error.Code != "" {
		return &APIError{Status: status, Code: eb.Error.Code, Field: eb.Error.Field, Message: eb.Error.Message}
	}
	msg := strings.TrimSpace(string(data))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &APIError{Status: status, Code: clientStatusCode(status), Message: msg}
}

// clientStatusCode is the ErrorBody code of an HTTP status.
func clientStatusCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusConflict:
		return "conflict"
	case http.StatusServiceUnavailable:
		return "not_ready"
	case http.StatusInternalServerError:
		return "internal"
	}
	if t := http.StatusText(status); t != "" {
		return strings.ToLower(strings.ReplaceAll(t, " ", "_"))
	}
	return "http_" + strconv.Itoa(status)
}

// clientSeg escapes one path segment (names and call ids may hold ';', '@', '/').
func clientSeg(s string) string { return url.PathEscape(s) }

// ---- plans ----

// clientPlan prepares a plan for a request body: rates without increments
// (the zero Increments, which encodes as "0/0" and does not decode) get the
// default increments, as configs.ApplyDefaults would give them.
func clientPlan(p configs.Plan) configs.Plan {
	rates := make([]configs.Rate, len(p.Rates))
	for i, r := range p.Rates {
		if r.Increments == (configs.Increments{}) {
			r.Increments = configs.DefaultIncrements
		}
		rates[i] = r
	}
	if p.Rates != nil {
		p.Rates = rates
	}
	return p
}

// Plans lists the plans (GET /v1/plans).
func (c *Client) Plans(ctx context.Context) ([]configs.Plan, error) {
	var out []configs.Plan
	_, err := c.do(ctx, clientRequest{method: http.MethodGet, path: "/v1/plans", out: &out})
	return out, err
}

// Plan returns one plan (GET /v1/plans/{name}).
func (c *Client) Plan(ctx context.Context, name string) (configs.Plan, error) {
	var out configs.Plan
	_, err := c.do(ctx, clientRequest{method: http.MethodGet, path: "/v1/plans/" + clientSeg(name), out: &out})
	return out, err
}

// CreatePlan creates a plan (POST /v1/plans; 409 if it exists) and returns
// it as stored.
func (c *Client) CreatePlan(ctx context.Context, p configs.Plan) (configs.Plan, error) {
	var out configs.Plan
	_, err := c.do(ctx, clientRequest{method: http.MethodPost, path: "/v1/plans", body: clientPlan(p), out: &out})
	return out, err
}

// PutPlan creates or replaces the plan p.Name (PUT /v1/plans/{name}); it
// returns the plan as stored and whether it was created (201).
func (c *Client) PutPlan(ctx context.Context, p configs.Plan) (configs.Plan, bool, error) {
	var out configs.Plan
	status, err := c.do(ctx, clientRequest{method: http.MethodPut, path: "/v1/plans/" + clientSeg(p.Name), body: clientPlan(p), out: &out})
	return out, status == http.StatusCreated, err
}

// DeletePlan deletes a plan (DELETE /v1/plans/{name}; 409 while tenants
// use it).
func (c *Client) DeletePlan(ctx context.Context, name string) error {
	_, err := c.do(ctx, clientRequest{method: http.MethodDelete, path: "/v1/plans/" + clientSeg(name)})
	return err
}

// ---- tenants ----

// Tenants lists the tenants with their status (GET /v1/tenants).
func (c *Client) Tenants(ctx context.Context) ([]TenantView, error) {
	var out []TenantView
	_, err := c.do(ctx, clientRequest{method: http.MethodGet, path: "/v1/tenants", out: &out})
	return out, err
}

// Tenant returns one tenant (GET /v1/tenants/{name}).
func (c *Client) Tenant(ctx context.Context, name string) (TenantView, error) {
	var out TenantView
	_, err := c.do(ctx, clientRequest{method: http.MethodGet, path: "/v1/tenants/" + clientSeg(name), out: &out})
	return out, err
}

// CreateTenant creates a tenant (POST /v1/tenants; 409 if it exists) and
// returns it as stored.
func (c *Client) CreateTenant(ctx context.Context, t configs.Tenant) (TenantView, error) {
	var out TenantView
	_, err := c.do(ctx, clientRequest{method: http.MethodPost, path: "/v1/tenants", body: t, out: &out})
	return out, err
}

// PutTenant creates or replaces the tenant t.Name (PUT
// /v1/tenants/{name}); it returns the tenant as stored and whether it was
// created (201).
func (c *Client) PutTenant(ctx context.Context, t configs.Tenant) (TenantView, bool, error) {
	var out TenantView
	status, err := c.do(ctx, clientRequest{method: http.MethodPut, path: "/v1/tenants/" + clientSeg(t.Name), body: t, out: &out})
	return out, status == http.StatusCreated, err
}

// DeleteTenant deletes a tenant (DELETE /v1/tenants/{name}; 409 while it
// has active calls).
func (c *Client) DeleteTenant(ctx context.Context, name string) error {
	_, err := c.do(ctx, clientRequest{method: http.MethodDelete, path: "/v1/tenants/" + clientSeg(name)})
	return err
}

// ---- limits ----

// Limits returns a tenant's overrides and effective limits (GET
// /v1/tenants/{name}/limits).
func (c *Client) Limits(ctx context.Context, tenant string) (LimitsView, error) {
	var out LimitsView
	_, err := c.do(ctx, clientRequest{method: http.MethodGet, path: "/v1/tenants/" + clientSeg(tenant) + "/limits", out: &out})
	return out, err
}

// PatchLimits applies a JSON merge patch (RFC 7396) to a tenant's
// overrides (PATCH /v1/tenants/{name}/limits): a value sets an override, a
// nil value clears it (inherit the plan); "destinations" takes a
// map[string]any of class to true, false or nil. Money limits are best sent
// as decimal strings ("500.25").
func (c *Client) PatchLimits(ctx context.Context, tenant string, patch map[string]any) (LimitsView, error) {
	if patch == nil {
		patch = map[string]any{}
	}
	var out LimitsView
	_, err := c.do(ctx, clientRequest{method: http.MethodPatch, path: "/v1/tenants/" + clientSeg(tenant) + "/limits",
		body: patch, contentType: "application/merge-patch+json", out: &out})
	return out, err
}

// ResetLimits removes every override of a tenant (POST
// /v1/tenants/{name}/reset).
func (c *Client) ResetLimits(ctx context.Context, tenant string) (LimitsView, error) {
	var out LimitsView
	_, err := c.do(ctx, clientRequest{method: http.MethodPost, path: "/v1/tenants/" + clientSeg(tenant) + "/reset", out: &out})
	return out, err
}

// ---- roles ----

// Roles returns a tenant's roles (GET /v1/tenants/{name}/roles).
func (c *Client) Roles(ctx context.Context, tenant string) ([]configs.Role, error) {
	var out []configs.Role
	_, err := c.do(ctx, clientRequest{method: http.MethodGet, path: "/v1/tenants/" + clientSeg(tenant) + "/roles", out: &out})
	return out, err
}

// PutRoles replaces a tenant's roles (PUT /v1/tenants/{name}/roles) and
// returns them as stored.
func (c *Client) PutRoles(ctx context.Context, tenant string, roles []configs.Role) ([]configs.Role, error) {
	if roles == nil {
		roles = []configs.Role{}
	}
	var out []configs.Role
	_, err := c.do(ctx, clientRequest{method: http.MethodPut, path: "/v1/tenants/" + clientSeg(tenant) + "/roles", body: roles, out: &out})
	return out, err
}

// PutRole creates or replaces one role (PUT
// /v1/tenants/{name}/roles/{role}); it returns the role as stored and
// whether it was created (201).
func (c *Client) PutRole(ctx context.Context, tenant string, role configs.Role) (configs.Role, bool, error) {
	var out configs.Role
	status, err := c.do(ctx, clientRequest{method: http.MethodPut,
		path: "/v1/tenants/" + clientSeg(tenant) + "/roles/" + clientSeg(role.Name), body: role, out: &out})
	return out, status == http.StatusCreated, err
}

// DeleteRole deletes one role (DELETE /v1/tenants/{name}/roles/{role}).
func (c *Client) DeleteRole(ctx context.Context, tenant, role string) error {
	_, err := c.do(ctx, clientRequest{method: http.MethodDelete, path: "/v1/tenants/" + clientSeg(tenant) + "/roles/" + clientSeg(role)})
	return err
}

// ---- usage, calls, status ----

// Usage returns a tenant's usage in the current cycle (GET
// /v1/tenants/{name}/usage).
func (c *Client) Usage(ctx context.Context, tenant string) (UsageView, error) {
	var out UsageView
	_, err := c.do(ctx, clientRequest{method: http.MethodGet, path: "/v1/tenants/" + clientSeg(tenant) + "/usage", out: &out})
	return out, err
}

// Calls lists the active calls, of one tenant or ("") all (GET
// /v1/calls?tenant=).
func (c *Client) Calls(ctx context.Context, tenant string) ([]CallView, error) {
	var q url.Values
	if tenant != "" {
		q = url.Values{"tenant": {tenant}}
	}
	var out []CallView
	_, err := c.do(ctx, clientRequest{method: http.MethodGet, path: "/v1/calls", query: q, out: &out})
	return out, err
}

// Hangup tears down an active call (DELETE /v1/calls/{id}); id is the
// CallView.ID (Call-ID;from-tag) or the SIP Call-ID.
func (c *Client) Hangup(ctx context.Context, id string) error {
	_, err := c.do(ctx, clientRequest{method: http.MethodDelete, path: "/v1/calls/" + clientSeg(id)})
	return err
}

// Blocked lists the source addresses blocked by flood protection (GET
// /v1/blocked).
func (c *Client) Blocked(ctx context.Context) ([]BlockedView, error) {
	var out []BlockedView
	_, err := c.do(ctx, clientRequest{method: http.MethodGet, path: "/v1/blocked", out: &out})
	return out, err
}

// Unblock lifts the block of a source address (DELETE /v1/blocked/{ip}).
func (c *Client) Unblock(ctx context.Context, ip string) error {
	_, err := c.do(ctx, clientRequest{method: http.MethodDelete, path: "/v1/blocked/" + clientSeg(ip)})
	return err
}

// Cluster is the cluster ledger as the node sees it (GET /v1/cluster;
// tenant "" = every tenant).
func (c *Client) Cluster(ctx context.Context, tenant string) (ClusterStatus, error) {
	var q url.Values
	if tenant != "" {
		q = url.Values{"tenant": {tenant}}
	}
	var out ClusterStatus
	_, err := c.do(ctx, clientRequest{method: http.MethodGet, path: "/v1/cluster", query: q, out: &out})
	return out, err
}

// ReleaseNode gives back what a node that will not come back holds in
// the ledger (POST /v1/cluster/nodes/{node}/release).
func (c *Client) ReleaseNode(ctx context.Context, node string) (ClusterReleased, error) {
	var out ClusterReleased
	_, err := c.do(ctx, clientRequest{method: http.MethodPost, path: "/v1/cluster/nodes/" + clientSeg(node) + "/release", out: &out})
	return out, err
}

type clientReasonBody struct {
	Reason string `json:"reason"`
}

// Suspend suspends a tenant (POST /v1/tenants/{name}/suspend); the reason
// is required.
func (c *Client) Suspend(ctx context.Context, tenant, reason string) (TenantStatus, error) {
	var out TenantStatus
	_, err := c.do(ctx, clientRequest{method: http.MethodPost, path: "/v1/tenants/" + clientSeg(tenant) + "/suspend",
		body: clientReasonBody{reason}, out: &out})
	return out, err
}

// Resume lifts a tenant's suspension (POST /v1/tenants/{name}/resume).
func (c *Client) Resume(ctx context.Context, tenant, reason string) (TenantStatus, error) {
	var out TenantStatus
	_, err := c.do(ctx, clientRequest{method: http.MethodPost, path: "/v1/tenants/" + clientSeg(tenant) + "/resume",
		body: clientReasonBody{reason}, out: &out})
	return out, err
}

// Audit returns audit entries, newest first (GET
// /v1/audit?tenant=&from=&to=&limit=; times in RFC 3339).
func (c *Client) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	v := url.Values{}
	if q.Tenant != "" {
		v.Set("tenant", q.Tenant)
	}
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out []AuditEntry
	_, err := c.do(ctx, clientRequest{method: http.MethodGet, path: "/v1/audit", query: v, out: &out})
	return out, err
}

// ---- tokens ----

// Tokens lists the API tokens, without their secrets (GET /v1/tokens).
func (c *Client) Tokens(ctx context.Context) ([]TokenView, error) {
	var out []TokenView
	_, err := c.do(ctx, clientRequest{method: http.MethodGet, path: "/v1/tokens", out: &out})
	return out, err
}

type clientNewTokenBody struct {
	Name  string `json:"name"`
	Scope Scope  `json:"scope"`
}

// CreateToken creates a token (POST /v1/tokens); the answer holds the
// secret, which is never shown again.
func (c *Client) CreateToken(ctx context.Context, name string, scope Scope) (NewToken, error) {
	var out NewToken
	_, err := c.do(ctx, clientRequest{method: http.MethodPost, path: "/v1/tokens", body: clientNewTokenBody{name, scope}, out: &out})
	return out, err
}

// DeleteToken revokes a token (DELETE /v1/tokens/{name}).
func (c *Client) DeleteToken(ctx context.Context, name string) error {
	_, err := c.do(ctx, clientRequest{method: http.MethodDelete, path: "/v1/tokens/" + clientSeg(name)})
	return err
}

// ---- apply ----

// Apply creates or updates the plans and tenants of doc (POST
// /v1/apply[?dry_run=true]); a dry run only reports what would change.
func (c *Client) Apply(ctx context.Context, doc ApplyDoc, dryRun bool) (ApplyResult, error) {
	var q url.Values
	if dryRun {
		q = url.Values{"dry_run": {"true"}}
	}
	plans := make([]configs.Plan, len(doc.Plans))
	for i, p := range doc.Plans {
		plans[i] = clientPlan(p)
	}
	doc.Plans = plans
	if doc.Tenants == nil {
		doc.Tenants = []configs.Tenant{}
	}
	var out ApplyResult
	_, err := c.do(ctx, clientRequest{method: http.MethodPost, path: "/v1/apply", query: q, body: doc, out: &out})
	return out, err
}
