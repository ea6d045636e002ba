package api

import (
	"cmp"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tollgate/tollgate/cluster"
)

// OtherTenant is the tenant label of the series that sums the active calls
// of the tenants beyond the per-tenant series bound (and of a tenant that
// happens to be named "_other").
const OtherTenant = "_other"

// Histogram buckets, in seconds.
var (
	// admissionBuckets span 1µs..100ms: an admission decision is in memory.
	admissionBuckets = []float64{
		1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
		1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1,
	}
	// commitBuckets span 100µs..1s: a group commit, with fsync.
	commitBuckets = []float64{
		1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2,
		0.1, 0.25, 0.5, 1,
	}
	// pubAckBuckets span 50µs..5s: publish to PubAck (5 s is the
	// publisher's ack timeout).
	pubAckBuckets = []float64{
		5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2,
		0.1, 0.25, 0.5, 1, 2.5, 5,
	}
)

// Metrics are tollgate's Prometheus metrics, registered on one registry
// (served at /metrics by NewServer):
//
//	tollgate_calls_admitted_total{direction}   counter
//	tollgate_calls_rejected_total{cause}       counter
//	tollgate_admission_latency_seconds         histogram (1µs..100ms)
//	tollgate_teardowns_total{cause}            counter
//	tollgate_sip_refused_total{cause}          counter (front door, source, party)
//	tollgate_sip_dropped_total{reason}         counter (stray, unparsable)
//	tollgate_store_commit_seconds              histogram (100µs..1s)
//	tollgate_outbox_depth                      gauge (SetOutboxDepth)
//	tollgate_outbox_oldest_age_seconds         gauge (SetPublisherSource)
//	tollgate_events_published_total            counter (SetPublisherSource)
//	tollgate_events_duplicate_acks_total       counter (SetPublisherSource)
//	tollgate_events_publish_errors_total       counter (SetPublisherSource)
//	tollgate_events_skipped_total              counter (SetPublisherSource)
//	tollgate_nats_connected                    gauge (SetPublisherSource)
//	tollgate_events_puback_seconds             histogram (50µs..5s)
//	tollgate_cluster_lease_acquisitions_total  counter (SetClusterSource)
//	tollgate_cluster_lease_returns_total       counter (SetClusterSource)
//	tollgate_cluster_cas_conflicts_total       counter (SetClusterSource)
//	tollgate_cluster_reclaims_total            counter (SetClusterSource)
//	tollgate_cluster_ledger_full_total         counter (SetClusterSource)
//	tollgate_cluster_ledger_errors_total       counter (SetClusterSource)
//	tollgate_cluster_ledger_rtt_seconds        histogram (SetClusterSource, 250µs..1s)
//	tollgate_cluster_leases_valid              gauge (SetClusterSource)
//	tollgate_active_calls{tenant}              gauge (SetActiveSource), bounded
//	tollgate_active_calls_total                gauge (SetActiveSource)
//	tollgate_flood_allowed_total               counter (SetFloodSource)
//	tollgate_flood_limited_total               counter (SetFloodSource)
//	tollgate_flood_dropped_total               counter (SetFloodSource)
//	tollgate_flood_blocked_sources             gauge (SetFloodSource)
//	tollgate_flood_tracked_sources             gauge (SetFloodSource)
//	tollgate_flood_connections_refused_total   counter (SetFloodSource)
//
// plus the Go runtime and process collectors.
//
// Every method is safe for concurrent use and a no-op on a nil *Metrics, so
// components may be given nil when metrics are off.
type Metrics struct {
	reg              *prometheus.Registry
	admitted         *prometheus.CounterVec
	rejected         *prometheus.CounterVec
	admissionLatency prometheus.Histogram
	teardowns        *prometheus.CounterVec
	refused          *prometheus.CounterVec
	dropped          *prometheus.CounterVec
	stackErrors      prometheus.Counter
	commitLatency    prometheus.Histogram
	pubAckLatency    prometheus.Histogram

	mu        sync.Mutex
	publisher func() PublisherStats
	outbox    func() int
	active    func() map[string]int64
	flood     func() FloodStats
	media     func() MediaStats
	cluster   func() cluster.Stats
}

// MediaStats are the media relay's totals, read at scrape time
// (SetMediaSource).
type MediaStats struct {
	Packets    uint64 // RTP and RTCP packets relayed
	Bytes      uint64 // their bytes
	Dropped    uint64 // from a source other than the latched one, not RTP, or with nowhere to go
	PortsInUse int64  // UDP ports held by anchored calls (two per leg)
	PortsFree  int64  // ports left in media.ports
}

// PublisherStats are the NATS publisher's figures, read at scrape time
// (SetPublisherSource).
type PublisherStats struct {
	OldestAge  time.Duration // now − time of the oldest event in the outbox; 0 when empty
	Published  uint64        // events JetStream acknowledged as stored
	Duplicates uint64        // events acknowledged as duplicates (a republish, dropped by the stream)
	Errors     uint64        // failed publishes (retried)
	Skipped    uint64        // events that could not be encoded or published, dropped
	Connected  bool          // the NATS connection is up
}

// FloodStats are flood protection's counts, read at scrape time
// (SetFloodSource): the totals since start and the sources now.
type FloodStats struct {
	Allowed            uint64 // requests let through
	Limited            uint64 // requests over a source's rate (each one blocked its source)
	Dropped            uint64 // requests from blocked sources
	ConnectionsRefused uint64 // TCP/TLS connections closed at accept (caps or blocked source)
	BlockedSources     int    // sources blocked now
	TrackedSources     int    // sources tracked now (bounded by sip.flood.max_tracked)
}

// NewMetrics creates the metrics and registers them on reg (a new registry
// when reg is nil). maxTenantSeries bounds the tollgate_active_calls series:
// the busiest maxTenantSeries tenants get their own series (highest counts
// first, ties by name), the others are summed under tenant="_other";
// 0 (or less) exposes only tollgate_active_calls_total. It panics if a
// metric is already registered on reg.
func NewMetrics(reg *prometheus.Registry, maxTenantSeries int) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		reg: reg,
		admitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_calls_admitted_total",
			Help: "Calls admitted, by direction (inbound, outbound).",
		}, []string{"direction"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_calls_rejected_total",
			Help: "Calls rejected, by cause.",
		}, []string{"cause"}),
		admissionLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tollgate_admission_latency_seconds",
			Help:    "Time to decide the admission of a call.",
			Buckets: admissionBuckets,
		}),
		teardowns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_teardowns_total",
			Help: "Calls cut by the gateway, by cause.",
		}, []string{"cause"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_sip_refused_total",
			Help: "SIP requests the edge answered itself before admission (an ACK is dropped), by cause: front-door checks, unknown source, party and target checks.",
		}, []string{"cause"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_sip_dropped_total",
			Help: "SIP messages dropped without an answer, by reason.",
		}, []string{"reason"}),
		stackErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_sip_stack_errors_total",
			Help: "Errors the SIP stack (sipgo) reported, each logged or, beyond one line per second, suppressed.",
		}),
		commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tollgate_store_commit_seconds",
			Help:    "Duration of a store group commit.",
			Buckets: commitBuckets,
		}),
		pubAckLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tollgate_events_puback_seconds",
			Help:    "Time from publishing an event to NATS to its JetStream PubAck.",
			Buckets: pubAckBuckets,
		}),
	}
	outbox := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tollgate_outbox_depth",
		Help: "Events waiting in the outbox to be published.",
	}, func() float64 {
		m.mu.Lock()
		f := m.outbox
		m.mu.Unlock()
		if f == nil {
			return 0
		}
		return float64(f())
	})
	reg.MustRegister(
		m.admitted, m.rejected, m.admissionLatency, m.teardowns, m.refused, m.dropped, m.stackErrors, m.commitLatency, outbox,
		m.pubAckLatency,
		&activeCollector{m: m, max: maxTenantSeries},
		floodCollector{m: m},
		mediaCollector{m: m},
		publisherCollector{m: m},
		clusterCollector{m: m},
		// The scheduler's own figures (goroutines created, run-queue
		// latencies) beside the defaults: what a call costs in handoffs.
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
			collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/sched/`)})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry returns the registry the metrics are registered on (nil for a
// nil *Metrics).
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Admitted counts an admitted call of direction (inbound, outbound).
func (m *Metrics) Admitted(direction string) {
	if m == nil {
		return
	}
	m.admitted.WithLabelValues(direction).Inc()
}

// Rejected counts a rejected call by its cause (configs.Cause*).
func (m *Metrics) Rejected(cause string) {
	if m == nil {
		return
	}
	m.rejected.WithLabelValues(cause).Inc()
}

// AdmissionLatency observes the time one admission decision took.
func (m *Metrics) AdmissionLatency(d time.Duration) {
	if m == nil {
		return
	}
	m.admissionLatency.Observe(d.Seconds())
}

// Teardown counts a call cut by the gateway, by cause.
func (m *Metrics) Teardown(cause string) {
	if m == nil {
		return
	}
	m.teardowns.WithLabelValues(cause).Inc()
}

// Refused counts a SIP request the edge answered before admission, by cause.
func (m *Metrics) Refused(cause string) {
	if m == nil {
		return
	}
	m.refused.WithLabelValues(cause).Inc()
}

// Dropped counts a SIP message dropped without an answer, by reason.
func (m *Metrics) Dropped(reason string) {
	if m == nil {
		return
	}
	m.dropped.WithLabelValues(reason).Inc()
}

// StackError counts an error the SIP stack (sipgo) reported
// (sip.StackErrorObserver).
func (m *Metrics) StackError() {
	if m == nil {
		return
	}
	m.stackErrors.Inc()
}

// CommitLatency observes the duration of one store group commit.
func (m *Metrics) CommitLatency(d time.Duration) {
	if m == nil {
		return
	}
	m.commitLatency.Observe(d.Seconds())
}

// SetOutboxDepth sets the function read at scrape time for
// tollgate_outbox_depth (nil: 0).
func (m *Metrics) SetOutboxDepth(f func() int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.outbox = f
	m.mu.Unlock()
}

// SetClusterSource sets the function /metrics reads the cluster ledger's
// counters from (not set without cluster.enabled: the series stay at 0).
func (m *Metrics) SetClusterSource(f func() cluster.Stats) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.cluster = f
	m.mu.Unlock()
}

// SetPublisherSource sets the function /metrics reads the NATS
// publisher's figures from (not set with nats.enabled false: the series
// stay at 0). It must be safe to call concurrently.
func (m *Metrics) SetPublisherSource(f func() PublisherStats) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.publisher = f
	m.mu.Unlock()
}

// PubAckLatency observes the time from publishing one event to its
// PubAck.
func (m *Metrics) PubAckLatency(d time.Duration) {
	if m == nil {
		return
	}
	m.pubAckLatency.Observe(d.Seconds())
}

// SetActiveSource sets the function read at scrape time for the active
// calls per tenant (nil: no calls). It must be safe to call concurrently
// and should be cheap; the map is not retained.
func (m *Metrics) SetActiveSource(f func() map[string]int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.active = f
	m.mu.Unlock()
}

// SetFloodSource sets the function read at scrape time for the
// tollgate_flood_* metrics (nil: all zero). It must be safe to call
// concurrently.
func (m *Metrics) SetFloodSource(f func() FloodStats) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.flood = f
	m.mu.Unlock()
}

// SetMediaSource sets the function /metrics reads the media relay's
// totals from (not set with media.mode off: the series stay at 0).
func (m *Metrics) SetMediaSource(f func() MediaStats) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.media = f
	m.mu.Unlock()
}

// hasActiveSource reports whether SetActiveSource was given a function.
func (m *Metrics) hasActiveSource() bool {
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.active != nil
}

var (
	activeDesc = prometheus.NewDesc("tollgate_active_calls",
		"Active calls of a tenant (the busiest tenants; the rest summed under tenant=\"_other\").",
		[]string{"tenant"}, nil)
	activeTotalDesc = prometheus.NewDesc("tollgate_active_calls_total",
		"Active calls of all tenants.", nil, nil)
)

// activeCollector exposes the active calls with a bounded number of tenant
// series.
type activeCollector struct {
	m   *Metrics
	max int
}

// Describe implements prometheus.Collector.
func (c *activeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- activeDesc
	ch <- activeTotalDesc
}

// Collect implements prometheus.Collector.
func (c *activeCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	f := c.m.active
	c.m.mu.Unlock()
	var counts map[string]int64
	if f != nil {
		counts = f()
	}
	series, total := boundSeries(counts, c.max)
	for _, s := range series {
		ch <- prometheus.MustNewConstMetric(activeDesc, prometheus.GaugeValue, float64(s.n), s.tenant)
	}
	ch <- prometheus.MustNewConstMetric(activeTotalDesc, prometheus.GaugeValue, float64(total))
}

type tenantCount struct {
	tenant string
	n      int64
}

// boundSeries picks the series of tollgate_active_calls: the max busiest
// tenants (ties by name) and an OtherTenant series summing the rest (always
// present when max > 0). A tenant named OtherTenant is counted in it. It
// also returns the total.
func boundSeries(counts map[string]int64, max int) (series []tenantCount, total int64) {
	all := make([]tenantCount, 0, len(counts))
	var other int64
	for t, n := range counts {
		total += n
		if t == OtherTenant {
			other += n
			continue
		}
		all = append(all, tenantCount{t, n})
	}
	if max <= 0 {
		return nil, total
	}
	slices.SortFunc(all, func(a, b tenantCount) int {
		if c := cmp.Compare(b.n, a.n); c != 0 {
			return c
		}
		return cmp.Compare(a.tenant, b.tenant)
	})
	if len(all) > max {
		for _, tc := range all[max:] {
			other += tc.n
		}
		all = all[:max]
	}
	return append(all, tenantCount{OtherTenant, other}), total
}

var (
	floodAllowedDesc = prometheus.NewDesc("tollgate_flood_allowed_total",
		"Requests flood protection let through.", nil, nil)
	floodLimitedDesc = prometheus.NewDesc("tollgate_flood_limited_total",
		"Requests over their source's rate; each one blocked its source for sip.flood.block.", nil, nil)
	floodDroppedDesc = prometheus.NewDesc("tollgate_flood_dropped_total",
		"Requests from blocked sources (dropped, or answered 503 at most once per second per source).", nil, nil)
	floodBlockedDesc = prometheus.NewDesc("tollgate_flood_blocked_sources",
		"Source addresses blocked now.", nil, nil)
	floodTrackedDesc = prometheus.NewDesc("tollgate_flood_tracked_sources",
		"Source addresses flood protection tracks now (at most sip.flood.max_tracked).", nil, nil)
	floodRefusedDesc = prometheus.NewDesc("tollgate_flood_connections_refused_total",
		"TCP/TLS connections closed at accept: over max_connections_per_source or max_connections, or from a blocked source.", nil, nil)
)

// floodCollector exposes FloodStats read at scrape time.
type floodCollector struct{ m *Metrics }

// Describe implements prometheus.Collector.
func (c floodCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{floodAllowedDesc, floodLimitedDesc, floodDroppedDesc, floodBlockedDesc, floodTrackedDesc, floodRefusedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c floodCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	f := c.m.flood
	c.m.mu.Unlock()
	var st FloodStats
	if f != nil {
		st = f()
	}
	ch <- prometheus.MustNewConstMetric(floodAllowedDesc, prometheus.CounterValue, float64(st.Allowed))
	ch <- prometheus.MustNewConstMetric(floodLimitedDesc, prometheus.CounterValue, float64(st.Limited))
	ch <- prometheus.MustNewConstMetric(floodDroppedDesc, prometheus.CounterValue, float64(st.Dropped))
	ch <- prometheus.MustNewConstMetric(floodBlockedDesc, prometheus.GaugeValue, float64(st.BlockedSources))
	ch <- prometheus.MustNewConstMetric(floodTrackedDesc, prometheus.GaugeValue, float64(st.TrackedSources))
	ch <- prometheus.MustNewConstMetric(floodRefusedDesc, prometheus.CounterValue, float64(st.ConnectionsRefused))
}

var (
	mediaPacketsDesc = prometheus.NewDesc("tollgate_media_packets_total",
		"RTP and RTCP packets relayed between the legs of anchored calls.", nil, nil)
	mediaBytesDesc = prometheus.NewDesc("tollgate_media_bytes_total",
		"Bytes of the packets relayed.", nil, nil)
	mediaDroppedDesc = prometheus.NewDesc("tollgate_media_dropped_total",
		"Media packets dropped: from a source other than the leg's latched one, not RTP, or with no destination yet.", nil, nil)
	mediaPortsUsedDesc = prometheus.NewDesc("tollgate_media_ports_in_use",
		"UDP ports held by anchored calls (RTP and RTCP, two legs per call).", nil, nil)
	mediaPortsFreeDesc = prometheus.NewDesc("tollgate_media_ports_free",
		"UDP ports of media.ports not in use.", nil, nil)
)

// mediaCollector exposes MediaStats read at scrape time.
type mediaCollector struct{ m *Metrics }

// Describe implements prometheus.Collector.
func (c mediaCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mediaPacketsDesc, mediaBytesDesc, mediaDroppedDesc, mediaPortsUsedDesc, mediaPortsFreeDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c mediaCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	f := c.m.media
	c.m.mu.Unlock()
	var st MediaStats
	if f != nil {
		st = f()
	}
	ch <- prometheus.MustNewConstMetric(mediaPacketsDesc, prometheus.CounterValue, float64(st.Packets))
	ch <- prometheus.MustNewConstMetric(mediaBytesDesc, prometheus.CounterValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(mediaDroppedDesc, prometheus.CounterValue, float64(st.Dropped))
	ch <- prometheus.MustNewConstMetric(mediaPortsUsedDesc, prometheus.GaugeValue, float64(st.PortsInUse))
	ch <- prometheus.MustNewConstMetric(mediaPortsFreeDesc, prometheus.GaugeValue, float64(st.PortsFree))
}

var (
	outboxOldestDesc = prometheus.NewDesc("tollgate_outbox_oldest_age_seconds",
		"Age of the oldest event waiting in the outbox (0 when it is empty).", nil, nil)
	eventsPublishedDesc = prometheus.NewDesc("tollgate_events_published_total",
		"Events published to NATS JetStream and acknowledged as stored.", nil, nil)
	eventsDuplicatesDesc = prometheus.NewDesc("tollgate_events_duplicate_acks_total",
		"Events acknowledged by JetStream as duplicates (republished after a failure or restart; stored once).", nil, nil)
	eventsErrorsDesc = prometheus.NewDesc("tollgate_events_publish_errors_total",
		"Failed event publishes (timeouts, no responders, lost connection); each is retried.", nil, nil)
	eventsSkippedDesc = prometheus.NewDesc("tollgate_events_skipped_total",
		"Events dropped from the outbox because they cannot be encoded or published at all (logged).", nil, nil)
	natsConnectedDesc = prometheus.NewDesc("tollgate_nats_connected",
		"1 while the NATS connection is up.", nil, nil)
)

// publisherCollector exposes PublisherStats read at scrape time.
type publisherCollector struct{ m *Metrics }

// Describe implements prometheus.Collector.
func (c publisherCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{outboxOldestDesc, eventsPublishedDesc, eventsDuplicatesDesc, eventsErrorsDesc, eventsSkippedDesc, natsConnectedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c publisherCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	f := c.m.publisher
	c.m.mu.Unlock()
	var st PublisherStats
	if f != nil {
		st = f()
	}
	connected := 0.0
	if st.Connected {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(outboxOldestDesc, prometheus.GaugeValue, st.OldestAge.Seconds())
	ch <- prometheus.MustNewConstMetric(eventsPublishedDesc, prometheus.CounterValue, float64(st.Published))
	ch <- prometheus.MustNewConstMetric(eventsDuplicatesDesc, prometheus.CounterValue, float64(st.Duplicates))
	ch <- prometheus.MustNewConstMetric(eventsErrorsDesc, prometheus.CounterValue, float64(st.Errors))
	ch <- prometheus.MustNewConstMetric(eventsSkippedDesc, prometheus.CounterValue, float64(st.Skipped))
	ch <- prometheus.MustNewConstMetric(natsConnectedDesc, prometheus.GaugeValue, connected)
}

var (
	clusterAcquiredDesc = prometheus.NewDesc("tollgate_cluster_lease_acquisitions_total",
		"Leases taken or grown from the cluster ledger (parallel calls and CPS tokens).", nil, nil)
	clusterReturnedDesc = prometheus.NewDesc("tollgate_cluster_lease_returns_total",
		"Idle leased capacity given back to the cluster ledger.", nil, nil)
	clusterConflictsDesc = prometheus.NewDesc("tollgate_cluster_cas_conflicts_total",
		"Ledger compare-and-set writes that lost to another node's write (retried).", nil, nil)
	clusterReclaimsDesc = prometheus.NewDesc("tollgate_cluster_reclaims_total",
		"Ledger writes that took back capacity of a silent or released node.", nil, nil)
	clusterFullDesc = prometheus.NewDesc("tollgate_cluster_ledger_full_total",
		"Lease requests the ledger had no capacity left for (the cap is reached cluster-wide).", nil, nil)
	clusterErrorsDesc = prometheus.NewDesc("tollgate_cluster_ledger_errors_total",
		"Failed ledger requests (NATS unreachable, timeouts).", nil, nil)
	clusterRTTDesc = prometheus.NewDesc("tollgate_cluster_ledger_rtt_seconds",
		"Round-trip time of one ledger request (read or compare-and-set) to JetStream.", nil, nil)
	clusterValidDesc = prometheus.NewDesc("tollgate_cluster_leases_valid",
		"1 while this node's leases are renewed (it admits within them); 0 past lease_ttl without a renewal.", nil, nil)
)

// clusterCollector exposes cluster.Stats read at scrape time.
type clusterCollector struct{ m *Metrics }

// Describe implements prometheus.Collector.
func (c clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{clusterAcquiredDesc, clusterReturnedDesc, clusterConflictsDesc, clusterReclaimsDesc,
		clusterFullDesc, clusterErrorsDesc, clusterRTTDesc, clusterValidDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	f := c.m.cluster
	c.m.mu.Unlock()
	var st cluster.Stats
	if f != nil {
		st = f()
	}
	for _, v := range []struct {
		d *prometheus.Desc
		n uint64
	}{{clusterAcquiredDesc, st.Acquired}, {clusterReturnedDesc, st.Returned}, {clusterConflictsDesc, st.Conflicts},
		{clusterReclaimsDesc, st.Reclaims}, {clusterFullDesc, st.Full}, {clusterErrorsDesc, st.Errors}} {
		ch <- prometheus.MustNewConstMetric(v.d, prometheus.CounterValue, float64(v.n))
	}
	buckets := make(map[float64]uint64, len(cluster.RTTBuckets))
	for i, b := range cluster.RTTBuckets {
		if i < len(st.RTTBuckets) {
			buckets[b.Seconds()] = st.RTTBuckets[i]
		} else {
			buckets[b.Seconds()] = 0
		}
	}
	ch <- prometheus.MustNewConstHistogram(clusterRTTDesc, st.RTTCount, st.RTTSum.Seconds(), buckets)
	valid := 0.0
	if st.Valid {
		valid = 1
	}
	ch <- prometheus.MustNewConstMetric(clusterValidDesc, prometheus.GaugeValue, valid)
}
