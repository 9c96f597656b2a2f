package main

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	heraldfake "github.com/heraldlb/herald/internal/client/clientset/versioned/fake"
	"github.com/heraldlb/herald/internal/docscheck"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/membership"
	"github.com/heraldlb/herald/internal/metricsserver"
)

// noMembers is a membership nobody joined.
type noMembers struct{}

func (noMembers) Members() []membership.Member { return nil }
func (noMembers) Changed() <-chan struct{}     { return nil }
func (noMembers) SetPeers([]netip.AddrPort)    {}
func (noMembers) Leave(time.Duration) error    { return nil }
func (noMembers) Keyring() membership.Keyring  { return membership.Keyring{} }

// TestMetricsDocumented builds the speaker's components as serve does,
// BGP included, and checks every metric they register against
// docs/metrics.md.
func TestMetricsDocumented(t *testing.T) {
	reg := docscheck.NewRegistry()
	reg.MustRegister(metricsserver.Collectors()...) // as metricsserver.NewRegistry does for serve
	c, err := assemble(assembly{
		node: "n1", port: membership.DefaultPort, class: k8s.Class{Name: "herald.dev/lb"}, namespace: "herald-system",
		kube: kubefake.NewClientset(), herald: heraldfake.NewSimpleClientset(), members: noMembers{},
		recorder: record.NewFakeRecorder(1), log: slog.New(slog.DiscardHandler), registry: reg,
		v4: netip.MustParseAddr("198.51.100.1"), v6: netip.MustParseAddr("2001:db8::1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.bgp.Run(stopped); err != nil { // ends its event watch
		t.Fatal(err)
	}
	doc, err := docscheck.ReadDoc(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := reg.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 10 {
		t.Fatalf("only %d metrics registered: %v", len(ms), ms)
	}
	for _, p := range doc.CheckBinary("herald-speaker", ms) {
		t.Errorf("docs/metrics.md: %s", p)
	}
}
