package install

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// metallbHostPorts are the ports MetalLB's speakers bind on every node
// (they run on the host network) in its default manifests and Helm chart.
var metallbHostPorts = map[int]string{
	7472: "MetalLB speaker metrics",
	7473: "MetalLB FRR metrics (FRR mode)",
	7946: "MetalLB memberlist",
	9120: "MetalLB speaker metrics over TLS (kube-rbac-proxy)",
	9121: "MetalLB FRR metrics over TLS (kube-rbac-proxy)",
	7572: "frr-k8s metrics (MetalLB's FRR-K8s mode)",
	7573: "frr-k8s FRR metrics (MetalLB's FRR-K8s mode)",
}

// herald-speaker's defaults for the two ports it binds (its --help and
// docs/install.md), for a manifest that does not set the flags.
const (
	defaultMemberlistPort = 7946
	defaultMetricsPort    = 7473
)

// renderWith renders config/default with the given kustomize components,
// as an operator's overlay would.
func renderWith(t *testing.T, components ...string) []byte {
	t.Helper()
	tmp := t.TempDir()
	rel := func(p string) string {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		r, err := filepath.Rel(tmp, abs)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	k := map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1",
		"kind":       "Kustomization",
		"resources":  []string{rel("../../config/default")},
	}
	var comps []string
	for _, c := range components {
		comps = append(comps, rel(c))
	}
	if len(comps) > 0 {
		k["components"] = comps
	}
	b, err := yaml.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "kustomization.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := Render(tmp)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// speakerDaemonSet finds herald-speaker's DaemonSet in a manifest.
func speakerDaemonSet(t *testing.T, manifest []byte) *appsv1.DaemonSet {
	t.Helper()
	objs, err := Objects(manifest)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() == "DaemonSet" && o.GetName() == "herald-speaker" {
			var ds appsv1.DaemonSet
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &ds); err != nil {
				t.Fatal(err)
			}
			return &ds
		}
	}
	t.Fatal("no DaemonSet herald-speaker in the manifest")
	return nil
}

// boundPorts checks that the speaker container's flags, its declared
// ports and its probes agree, and returns the ports the speaker binds on
// the node, by the name of the container port that declares each.
func boundPorts(t *testing.T, ds *appsv1.DaemonSet) map[string]int {
	t.Helper()
	if !ds.Spec.Template.Spec.HostNetwork {
		t.Fatal("herald-speaker does not run on the host network; this check assumes it does")
	}
	if len(ds.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("herald-speaker has %d containers; this check knows one", len(ds.Spec.Template.Spec.Containers))
	}
	c := ds.Spec.Template.Spec.Containers[0]
	memberlist, metrics := defaultMemberlistPort, defaultMetricsPort
	for _, a := range c.Args {
		name, value, _ := strings.Cut(a, "=")
		var err error
		switch name {
		case "--memberlist-port":
			memberlist, err = strconv.Atoi(value)
		case "--metrics-addr":
			var p string
			if _, p, err = net.SplitHostPort(value); err == nil {
				metrics, err = strconv.Atoi(p)
			}
		}
		if err != nil {
			t.Fatalf("argument %q: %v", a, err)
		}
	}
	want := map[string]int{"metrics": metrics, "memberlist-tcp": memberlist, "memberlist-udp": memberlist}
	got := map[string]int{}
	for _, p := range c.Ports {
		port := int(p.ContainerPort)
		if p.HostPort != 0 && int(p.HostPort) != port {
			t.Errorf("port %s: hostPort %d differs from containerPort %d on the host network", p.Name, p.HostPort, port)
		}
		got[p.Name] = port
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("container port %s is %d; the flags make the speaker bind %d", name, got[name], w)
		}
	}
	for what, probe := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		if probe == nil || probe.HTTPGet == nil {
			continue
		}
		p := probe.HTTPGet.Port
		if n := p.IntValue(); n != 0 && n != metrics || n == 0 && got[p.StrVal] != metrics {
			t.Errorf("%s probe on port %s; the speaker serves health on %d", what, p.String(), metrics)
		}
	}
	return want
}

// TestBesideMetalLB: config/components/beside-metallb moves every port
// the speaker binds on the node off MetalLB's, consistently in the flags,
// the declared ports and the probes; without it the default install does
// collide (which is why the component exists).
func TestBesideMetalLB(t *testing.T) {
	collisions := func(ports map[string]int) []string {
		var out []string
		for name, p := range ports {
			if what, ok := metallbHostPorts[p]; ok {
				out = append(out, name+" "+strconv.Itoa(p)+" ("+what+")")
			}
		}
		return out
	}
	if c := collisions(boundPorts(t, speakerDaemonSet(t, readInstall(t)))); len(c) == 0 {
		t.Error("the default install collides with MetalLB on no port; is the component still needed?")
	}
	beside := renderWith(t, "../../config/components/beside-metallb")
	ports := boundPorts(t, speakerDaemonSet(t, beside))
	if c := collisions(ports); len(c) > 0 {
		t.Errorf("with beside-metallb the speaker still binds MetalLB's ports: %s", strings.Join(c, ", "))
	}
	if ports["memberlist-tcp"] != 7947 || ports["metrics"] != 7474 {
		t.Errorf("beside-metallb binds %v; docs/migrating-from-metallb.md names memberlist 7947 and metrics 7474", ports)
	}
	// The component changes the speaker's ports and nothing else.
	plain, err := Objects(readInstall(t))
	if err != nil {
		t.Fatal(err)
	}
	patched, err := Objects(beside)
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != len(patched) {
		t.Errorf("beside-metallb renders %d objects; the default install has %d", len(patched), len(plain))
	}
}
