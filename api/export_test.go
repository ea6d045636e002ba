package api

import "net/http"

// Test-only views of the package internals (for the api_test package,
// which imports control/controltest, itself importing api, and so cannot be
// package api).

// RouteInfo is one row of the route table.
type RouteInfo struct {
	Method, Path string
	Scope        Scope // "" = public
	Query        []string
}

// RouteTable returns the route table.
func RouteTable() []RouteInfo {
	out := make([]RouteInfo, len(routes))
	for i, rt := range routes {
		out[i] = RouteInfo{Method: rt.method, Path: rt.path, Scope: rt.scope}
		for _, q := range rt.query {
			out[i].Query = append(out[i].Query, q.name)
		}
	}
	return out
}

// RegisteredPatterns returns every pattern NewServer registered on its mux.
func RegisteredPatterns(h http.Handler) []string {
	return append([]string(nil), h.(*server).patterns...)
}

// ScopeAllows is scopeAllows.
func ScopeAllows(have, need Scope) bool { return scopeAllows(have, need) }

// BoundSeries is boundSeries, flattened to tenant → count.
func BoundSeries(counts map[string]int64, max int) (map[string]int64, []string, int64) {
	series, total := boundSeries(counts, max)
	out := map[string]int64{}
	var order []string
	for _, s := range series {
		out[s.tenant] = s.n
		order = append(order, s.tenant)
	}
	return out, order, total
}
