package configs

import (
	"strings"
	"testing"
	"time"
)

func TestClusterDefaults(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte(base+"node: gw-1\ncluster: {enabled: true, replicas: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Cluster{Enabled: true, Node: "gw-1", LeaseTTL: 10 * time.Second, Bucket: "TOLLGATE_LEDGER",
		ConfigBucket: "TOLLGATE_CONFIG", Replicas: 1, BudgetFailure: "terminate"}
	if cfg.Cluster != want {
		t.Fatalf("cluster = %+v, want %+v", cfg.Cluster, want)
	}
	if st, err := cfg.AdmissionSettings(); err != nil || !st.Cluster {
		t.Errorf("the engine is not in cluster mode (%v)", err)
	}
}

// A bad cluster section is an error that names the field.
func TestClusterValidation(t *testing.T) {
	for _, tc := range []struct{ yaml, field, msg string }{
		{"cluster: {enabled: true}\n", "cluster.replicas", "embedded server is one server"},
		{"cluster: {enabled: true, replicas: 1, lease_ttl: 500ms}\n", "cluster.lease_ttl", ">= 1s"},
		{"cluster: {enabled: true, replicas: 1, bucket: 'a b'}\n", "cluster.bucket", "letters"},
		{"cluster: {enabled: true, replicas: 1, config_bucket: TOLLGATE_LEDGER}\n", "cluster.config_bucket", "other than cluster.bucket"},
		{"cluster: {enabled: true, replicas: 9}\nnats: {url: 'nats://127.0.0.1:4222'}\n", "cluster.replicas", "1..5"},
		{"cluster: {enabled: true, replicas: 1, node: 'a/b'}\n", "cluster.node", ""},
		{"cluster: {enabled: true, replicas: 1}\nnats: {enabled: false}\n", "cluster.enabled", "needs NATS"},
		{"cluster: {enabled: true, replicas: 1, budget_failure: stop}\n", "cluster.budget_failure", "terminate or continue"},
	} {
		_, err := Parse("c.yaml", []byte(base+tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: %v, want an error naming %s (%s)", tc.yaml, err, tc.field, tc.msg)
		}
	}
	// Off, the section is not checked.
	if _, err := Parse("c.yaml", []byte(base+"cluster: {enabled: false, lease_ttl: 1ms}\n")); err != nil {
		t.Errorf("disabled cluster section: %v", err)
	}
}
