package main

import (
	"context"
	"path/filepath"
	"testing"

	kubefake "k8s.io/client-go/kubernetes/fake"

	heraldfake "github.com/heraldlb/herald/internal/client/clientset/versioned/fake"
	"github.com/heraldlb/herald/internal/controller"
	"github.com/heraldlb/herald/internal/docscheck"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/metricsserver"
)

// TestMetricsDocumented builds the controller as run does and checks
// every metric it registers against docs/metrics.md.
func TestMetricsDocumented(t *testing.T) {
	reg := docscheck.NewRegistry()
	reg.MustRegister(metricsserver.Collectors()...) // as metricsserver.NewRegistry does for run
	ctrl := controller.New(controller.Config{
		Kube: kubefake.NewClientset(), Herald: heraldfake.NewSimpleClientset(),
		Class: k8s.Class{Name: "herald.dev/lb"}, Registry: reg,
	})
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	_ = ctrl.Run(stopped) // ends the work queue New started; the cancelled start is its error

	doc, err := docscheck.ReadDoc(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := reg.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 5 {
		t.Fatalf("only %d metrics registered: %v", len(ms), ms)
	}
	for _, p := range doc.CheckBinary("herald-controller", ms) {
		t.Errorf("docs/metrics.md: %s", p)
	}
}
