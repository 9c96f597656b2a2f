package main

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
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

// cpMembers stands for memberlist in TestControlPlaneMetricsDocumented.
type cpMembers struct{}

func (cpMembers) Members() []membership.Member               { return nil }
func (cpMembers) Changed() <-chan struct{}                   { return nil }
func (cpMembers) SetState(context.Context, bool, bool) error { return nil }

// TestControlPlaneMetricsDocumented builds the control-plane mode's parts
// as serveControlPlane does and checks every metric they register against
// docs/metrics.md, where they are exported by "herald-speaker
// control-plane".
func TestControlPlaneMetricsDocumented(t *testing.T) {
	reg := docscheck.NewRegistry()
	reg.MustRegister(metricsserver.Collectors()...)
	// Layer 2 and BGP, as two speakers would: the metrics of both modes.
	f := &cpFlags{nodeName: "cp1", vips: []netip.Addr{netip.MustParseAddr("198.51.100.100")}}
	if _, err := assembleControlPlane(f, cpMembers{}, func(context.Context) error { return nil }, reg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	f.bgpPeers = []netip.AddrPort{netip.MustParseAddrPort("198.51.100.1:179")}
	f.bgpRouterID, f.bindAddr = netip.MustParseAddr("198.51.100.11"), netip.MustParseAddr("198.51.100.11")
	reg2 := docscheck.NewRegistry()
	p, err := assembleControlPlane(f, cpMembers{}, func(context.Context) error { return nil }, reg2, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.bgp.Run(stopped); err != nil { // ends its event watch
		t.Fatal(err)
	}
	m2, err := reg2.Metrics()
	if err != nil {
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
	for _, m := range m2 {
		if !slices.ContainsFunc(ms, func(o docscheck.Metric) bool { return o.Name == m.Name }) {
			ms = append(ms, m)
		}
	}
	for _, p := range doc.CheckBinary("herald-speaker control-plane", ms) {
		t.Errorf("docs/metrics.md: %s", p)
	}
}
