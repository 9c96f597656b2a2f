package ctl

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/internal/version"
)

// componentVersion is one running piece of herald and the build it reports.
type componentVersion struct {
	Component string `json:"component"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	// Problem says why a component's version is unknown.
	Problem string `json:"problem,omitempty"`
}

// controllerSelector finds herald-controller Pods as install.yaml labels
// them.
const controllerSelector = "app.kubernetes.io/name=herald,app.kubernetes.io/component=controller"

// controllerMetricsPort is the container port name of the controller's
// metrics endpoint in install.yaml.
const controllerMetricsPort = "metrics"

// clientVersion is heraldctl's own line.
func clientVersion() componentVersion {
	v := version.Get()
	return componentVersion{Component: "heraldctl", Name: "-", Version: v.Version, Revision: v.Revision}
}

// clusterVersions asks the cluster which builds run: each controller Pod
// through its herald_build_info metric (read through the API server's Pod
// proxy, so no port-forward is needed), each speaker through its Speaker
// object's status.version.
func clusterVersions(ctx context.Context, c *clients, ns string) ([]componentVersion, error) {
	var out []componentVersion
	pods, err := c.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: controllerSelector})
	if err != nil {
		return nil, fmt.Errorf("listing herald-controller Pods in %s: %w", ns, err)
	}
	for _, p := range pods.Items {
		out = append(out, controllerVersion(ctx, c, &p))
	}
	if len(pods.Items) == 0 {
		out = append(out, componentVersion{Component: "controller", Name: "-", Version: "-",
			Problem: fmt.Sprintf("no Pod labelled %s in namespace %s", controllerSelector, ns)})
	}
	speakers, err := c.herald.HeraldV1alpha1().Speakers().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing Speakers: %w", err)
	}
	for _, s := range speakers.Items {
		cv := componentVersion{Component: "speaker", Name: s.Name, Version: s.Status.Version}
		if cv.Version == "" {
			cv.Version, cv.Problem = "-", "its Speaker status has no version (a speaker older than v0.1.0, or not reporting)"
		}
		out = append(out, cv)
	}
	return out, nil
}

func controllerVersion(ctx context.Context, c *clients, p *corev1.Pod) componentVersion {
	cv := componentVersion{Component: "controller", Name: p.Name, Version: "-"}
	if p.Status.Phase != corev1.PodRunning {
		cv.Problem = "Pod is " + string(p.Status.Phase)
		return cv
	}
	raw, err := c.kube.CoreV1().Pods(p.Namespace).ProxyGet("http", p.Name, controllerMetricsPort, "/metrics", nil).DoRaw(ctx)
	if err != nil {
		cv.Problem = fmt.Sprintf("reading its metrics through the Pod proxy: %v", err)
		return cv
	}
	v, rev, err := buildInfo(strings.NewReader(string(raw)))
	if err != nil {
		cv.Problem = err.Error()
		return cv
	}
	cv.Version, cv.Revision = v, rev
	return cv
}

// buildInfo reads herald_build_info's labels from a metrics page.
func buildInfo(r io.Reader) (ver, rev string, err error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return "", "", fmt.Errorf("parsing metrics: %w", err)
	}
	f, ok := families["herald_build_info"]
	if !ok || len(f.GetMetric()) == 0 {
		return "", "", fmt.Errorf("no herald_build_info metric (a build older than v0.1.0)")
	}
	for _, l := range f.GetMetric()[0].GetLabel() {
		switch l.GetName() {
		case "version":
			ver = l.GetValue()
		case "revision":
			rev = l.GetValue()
		}
	}
	return ver, rev, nil
}

func renderVersions(w io.Writer, vs []componentVersion) error {
	slices.SortStableFunc(vs, func(a, b componentVersion) int {
		return strings.Compare(rank(a.Component)+a.Name, rank(b.Component)+b.Name)
	})
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "COMPONENT\tNAME\tVERSION\tREVISION\tPROBLEM")
	for _, v := range vs {
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Component, v.Name, v.Version, dash(v.Revision), dash(v.Problem))
	}
	return tw.Flush()
}

// rank keeps heraldctl first, then the controller, then the speakers.
func rank(component string) string {
	switch component {
	case "heraldctl":
		return "0"
	case "controller":
		return "1"
	}
	return "2"
}

func printVersions(env Env, format string, vs []componentVersion) error {
	if format != "table" {
		return printStructured(env.Out, format, vs)
	}
	return renderVersions(env.Out, vs)
}
