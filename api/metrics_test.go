package api_test

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/cluster"
	"github.com/tollgate/tollgate/control/controltest"
)

func scrape(t *testing.T, e *env) string {
	t.Helper()
	w := e.do(t, "GET", "/metrics", "", "")
	if w.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", w.Code, w.Body)
	}
	return w.Body.String()
}

// series returns the sample lines of metric name ("name{labels} value").
func series(body, name string) []string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			out = append(out, l)
		}
	}
	return out
}

func TestMetricsExposition(t *testing.T) {
	e := newEnv(t)
	e.m.Admitted("inbound")
	e.m.Admitted("outbound")
	e.m.Admitted("outbound")
	e.m.Rejected("parallel_calls")
	e.m.AdmissionLatency(3 * time.Microsecond)
	e.m.Teardown("minutes")
	e.m.CommitLatency(2 * time.Millisecond)
	e.m.SetOutboxDepth(func() int { return 7 })
	body := scrape(t, e)
	for _, want := range []string{
		`tollgate_calls_admitted_total{direction="outbound"} 2`,
		`tollgate_calls_admitted_total{direction="inbound"} 1`,
		`tollgate_calls_rejected_total{cause="parallel_calls"} 1`,
		`tollgate_admission_latency_seconds_bucket{le="1e-06"} 0`,
		`tollgate_admission_latency_seconds_bucket{le="5e-06"} 1`,
		`tollgate_admission_latency_seconds_bucket{le="0.1"} 1`,
		`tollgate_teardowns_total{cause="minutes"} 1`,
		`tollgate_store_commit_seconds_bucket{le="0.0001"} 0`,
		`tollgate_store_commit_seconds_bucket{le="0.0025"} 1`,
		`tollgate_store_commit_seconds_bucket{le="1"} 1`,
		`tollgate_outbox_depth 7`,
		// NewServer wired the backend's active calls (demo has 2).
		`tollgate_active_calls{tenant="demo"} 2`,
		`tollgate_active_calls{tenant="_other"} 0`,
		`tollgate_active_calls_total 2`,
		// No flood source: zeros.
		"tollgate_flood_allowed_total 0",
		"tollgate_flood_blocked_sources 0",
		"go_goroutines ",
		"process_cpu_seconds_total ",
	} {
		if !strings.Contains(body, want+"\n") && !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestActiveCallsCardinality: at most maxTenantSeries tenant series
// (highest first, ties by name) plus _other with the rest.
func TestActiveCallsCardinality(t *testing.T) {
	counts := map[string]int64{"a": 5, "c": 3, "b": 3, "d": 1, "e": 0}
	m := api.NewMetrics(prometheus.NewRegistry(), 2)
	m.SetActiveSource(func() map[string]int64 { return maps.Clone(counts) })
	e := &env{b: controltest.NewEnv(t), m: m}
	e.h = api.NewServer(e.b.Svc, m, api.ServerOptions{}) // keeps the source set above
	body := scrape(t, e)
	got := series(body, "tollgate_active_calls")
	want := []string{
		`tollgate_active_calls{tenant="_other"} 4`,
		`tollgate_active_calls{tenant="a"} 5`,
		`tollgate_active_calls{tenant="b"} 3`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("series:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if tot := series(body, "tollgate_active_calls_total"); len(tot) != 1 || tot[0] != "tollgate_active_calls_total 12" {
		t.Errorf("total %v", tot)
	}

	// 0: the total only.
	m0 := api.NewMetrics(nil, 0)
	m0.SetActiveSource(func() map[string]int64 { return counts })
	e0 := &env{b: controltest.NewEnv(t), m: m0}
	e0.h = api.NewServer(e0.b.Svc, m0, api.ServerOptions{})
	body = scrape(t, e0)
	if s := series(body, "tollgate_active_calls"); len(s) != 0 {
		t.Errorf("max 0 exposes tenant series %v", s)
	}
	if tot := series(body, "tollgate_active_calls_total"); len(tot) != 1 || tot[0] != "tollgate_active_calls_total 12" {
		t.Errorf("total %v", tot)
	}
}

func TestBoundSeries(t *testing.T) {
	cases := []struct {
		counts map[string]int64
		max    int
		want   map[string]int64
		order  []string
		total  int64
	}{
		{map[string]int64{"a": 5, "b": 3, "c": 3, "d": 1, "e": 0}, 2,
			map[string]int64{"a": 5, "b": 3, "_other": 4}, []string{"a", "b", "_other"}, 12},
		{map[string]int64{"a": 1}, 5, map[string]int64{"a": 1, "_other": 0}, []string{"a", "_other"}, 1},
		{nil, 3, map[string]int64{"_other": 0}, []string{"_other"}, 0},
		{map[string]int64{"a": 1, "b": 2}, 0, map[string]int64{}, nil, 3},
		// A tenant named _other is folded into the _other series.
		{map[string]int64{"_other": 4, "x": 9, "y": 1}, 1, map[string]int64{"x": 9, "_other": 5}, []string{"x", "_other"}, 14},
	}
	for _, c := range cases {
		got, order, total := api.BoundSeries(c.counts, c.max)
		if !maps.Equal(got, c.want) || strings.Join(order, ",") != strings.Join(c.order, ",") || total != c.total {
			t.Errorf("boundSeries(%v, %d) = %v %v %d, want %v %v %d", c.counts, c.max, got, order, total, c.want, c.order, c.total)
		}
	}
}

func TestNilMetrics(t *testing.T) {
	var m *api.Metrics
	m.Admitted("inbound")
	m.Rejected("cps")
	m.AdmissionLatency(time.Millisecond)
	m.Teardown("spend")
	m.CommitLatency(time.Millisecond)
	m.SetOutboxDepth(func() int { return 1 })
	m.SetActiveSource(nil)
	if m.Registry() != nil {
		t.Error("nil Metrics has a registry")
	}
	e := &env{b: controltest.NewEnv(t)}
	e.h = api.NewServer(e.b.Svc, nil, api.ServerOptions{})
	if w := e.do(t, "GET", "/metrics", "", ""); w.Code != 200 {
		t.Errorf("/metrics without metrics: %d", w.Code)
	}
	// NewMetrics(nil, n) makes its own registry.
	if api.NewMetrics(nil, 1).Registry() == nil {
		t.Error("no registry")
	}
}

// TestFloodMetrics: the tollgate_flood_* series read the source at every
// scrape.
func TestFloodMetrics(t *testing.T) {
	e := newEnv(t)
	st := api.FloodStats{Allowed: 1000, Limited: 3, Dropped: 45678, ConnectionsRefused: 9, BlockedSources: 2, TrackedSources: 150}
	e.m.SetFloodSource(func() api.FloodStats { return st })
	body := scrape(t, e)
	for _, want := range []string{
		"# TYPE tollgate_flood_allowed_total counter\ntollgate_flood_allowed_total 1000\n",
		"# TYPE tollgate_flood_limited_total counter\ntollgate_flood_limited_total 3\n",
		"# TYPE tollgate_flood_dropped_total counter\ntollgate_flood_dropped_total 45678\n",
		"# TYPE tollgate_flood_blocked_sources gauge\ntollgate_flood_blocked_sources 2\n",
		"# TYPE tollgate_flood_tracked_sources gauge\ntollgate_flood_tracked_sources 150\n",
		"# TYPE tollgate_flood_connections_refused_total counter\ntollgate_flood_connections_refused_total 9\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	st.BlockedSources, st.Dropped = 0, 50000
	body = scrape(t, e)
	if !strings.Contains(body, "tollgate_flood_blocked_sources 0\n") || !strings.Contains(body, "tollgate_flood_dropped_total 50000\n") {
		t.Errorf("second scrape not read from the source:\n%s", strings.Join(series(body, "tollgate_flood_dropped_total"), "\n"))
	}
	var m *api.Metrics
	m.SetFloodSource(nil) // no-op on nil
}

// TestPublisherMetrics: the NATS publisher's series read the source at
// every scrape; without a source they are 0; PubAck latencies land in
// their histogram.
func TestPublisherMetrics(t *testing.T) {
	e := newEnv(t)
	body := scrape(t, e)
	for _, want := range []string{"tollgate_events_published_total 0\n", "tollgate_nats_connected 0\n", "tollgate_outbox_oldest_age_seconds 0\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics without a source lacks %q", want)
		}
	}
	st := api.PublisherStats{OldestAge: 1500 * time.Millisecond, Published: 1200, Duplicates: 7, Errors: 3, Skipped: 1, Connected: true}
	e.m.SetPublisherSource(func() api.PublisherStats { return st })
	e.m.PubAckLatency(700 * time.Microsecond)
	e.m.PubAckLatency(30 * time.Millisecond)
	body = scrape(t, e)
	for _, want := range []string{
		"# TYPE tollgate_outbox_oldest_age_seconds gauge\ntollgate_outbox_oldest_age_seconds 1.5\n",
		"# TYPE tollgate_events_published_total counter\ntollgate_events_published_total 1200\n",
		"# TYPE tollgate_events_duplicate_acks_total counter\ntollgate_events_duplicate_acks_total 7\n",
		"# TYPE tollgate_events_publish_errors_total counter\ntollgate_events_publish_errors_total 3\n",
		"# TYPE tollgate_events_skipped_total counter\ntollgate_events_skipped_total 1\n",
		"# TYPE tollgate_nats_connected gauge\ntollgate_nats_connected 1\n",
		`tollgate_events_puback_seconds_bucket{le="0.0005"} 0`,
		`tollgate_events_puback_seconds_bucket{le="0.001"} 1`,
		`tollgate_events_puback_seconds_bucket{le="0.05"} 2`,
		"tollgate_events_puback_seconds_count 2\n",
		"tollgate_outbox_depth ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	st.Connected, st.Published = false, 1300
	body = scrape(t, e)
	if !strings.Contains(body, "tollgate_nats_connected 0\n") || !strings.Contains(body, "tollgate_events_published_total 1300\n") {
		t.Errorf("second scrape not read from the source:\n%s", strings.Join(series(body, "tollgate_nats_connected"), "\n"))
	}
	var m *api.Metrics
	m.SetPublisherSource(nil) // no-ops on nil
	m.PubAckLatency(time.Millisecond)
}

// TestClusterMetrics: the ledger's series read the source at every
// scrape, the round-trip histogram included; without a source they are 0.
func TestClusterMetrics(t *testing.T) {
	e := newEnv(t)
	body := scrape(t, e)
	for _, want := range []string{"tollgate_cluster_lease_acquisitions_total 0\n", "tollgate_cluster_leases_valid 0\n", "tollgate_cluster_ledger_rtt_seconds_count 0\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics without a source lacks %q", want)
		}
	}
	st := cluster.Stats{Acquired: 40, Returned: 12, Conflicts: 5, Reclaims: 2, Full: 9, Errors: 1,
		RTTCount: 3, RTTSum: 1800 * time.Microsecond, Valid: true}
	// cumulative per cluster.RTTBuckets bound, then +Inf: one ≤ 250µs, two more ≤ 1ms
	st.RTTBuckets = []uint64{1, 1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3}
	e.m.SetClusterSource(func() cluster.Stats { return st })
	body = scrape(t, e)
	for _, want := range []string{
		"# TYPE tollgate_cluster_lease_acquisitions_total counter\ntollgate_cluster_lease_acquisitions_total 40\n",
		"tollgate_cluster_lease_returns_total 12\n",
		"tollgate_cluster_cas_conflicts_total 5\n",
		"tollgate_cluster_reclaims_total 2\n",
		"tollgate_cluster_ledger_full_total 9\n",
		"tollgate_cluster_ledger_errors_total 1\n",
		"tollgate_cluster_leases_valid 1\n",
		`tollgate_cluster_ledger_rtt_seconds_bucket{le="0.00025"} 1`,
		`tollgate_cluster_ledger_rtt_seconds_bucket{le="0.0005"} 1`,
		`tollgate_cluster_ledger_rtt_seconds_bucket{le="0.001"} 3`,
		`tollgate_cluster_ledger_rtt_seconds_bucket{le="+Inf"} 3`,
		"tollgate_cluster_ledger_rtt_seconds_sum 0.0018\n",
		"tollgate_cluster_ledger_rtt_seconds_count 3\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	var m *api.Metrics
	m.SetClusterSource(nil) // no-ops on nil
}
