package testcluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// The versions here name the cache dir that hack/k8sbin.sh fills; if they
// drift from the build files, tests would run stale binaries or none.
func TestVersionsMatchBuildFiles(t *testing.T) {
	read := func(path string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("..", "..", path))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	checks := []struct {
		file, pattern string
	}{
		{"hack/k8sbin.sh", `(?m)^K8S_VERSION=` + regexp.QuoteMeta(KubernetesVersion) + `$`},
		{"hack/k8sbin.sh", `(?m)^ETCD_VERSION=` + regexp.QuoteMeta(EtcdVersion) + `$`},
		{"e2e/k8sbin/go.mod", `(?m)^\s*(require\s+)?k8s\.io/kubernetes ` + regexp.QuoteMeta(KubernetesVersion) + `\b`},
		{"e2e/etcdbin/go.mod", `(?m)^\s*(require\s+)?go\.etcd\.io/etcd/server/v3 ` + regexp.QuoteMeta(EtcdVersion) + `\b`},
		{"hack/k8sbin-min.sh", `(?m)^K8S_VERSION=` + regexp.QuoteMeta(MinimumKubernetesVersion) + `$`},
		{"e2e/k8sbin-min/go.mod", `(?m)^\s*(require\s+)?k8s\.io/kubernetes ` + regexp.QuoteMeta(MinimumKubernetesVersion) + `\b`},
	}
	for _, c := range checks {
		if !regexp.MustCompile(c.pattern).MatchString(read(c.file)) {
			t.Errorf("%s does not match %s", c.file, c.pattern)
		}
	}

	// The staging modules are pinned by hand in each replace block; one
	// left at another release would build a mix of two.
	replace := regexp.MustCompile(`(?m)^\s*(k8s\.io/\S+) => \S+ (v\S+)$`)
	for file, version := range map[string]string{
		"e2e/k8sbin/go.mod":     KubernetesVersion,
		"e2e/k8sbin-min/go.mod": MinimumKubernetesVersion,
	} {
		want := "v0." + strings.TrimPrefix(version, "v1.")
		pins := replace.FindAllStringSubmatch(read(file), -1)
		if len(pins) == 0 {
			t.Errorf("%s replaces no staging module", file)
		}
		for _, m := range pins {
			if m[2] != want {
				t.Errorf("%s: %s is replaced by %s, want %s (the release of %s)", file, m[1], m[2], want, version)
			}
		}
	}
}

func TestMergeFlags(t *testing.T) {
	got := mergeFlags(
		[]string{"--a=1", "--disable-admission-plugins=ServiceAccount", "--v=1"},
		[]string{"--v=4", "--disable-admission-plugins=", "--feature-gates=Foo=true", "positional"},
	)
	want := []string{"--a=1", "--v=4", "--disable-admission-plugins=", "--feature-gates=Foo=true", "positional"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mergeFlags (-want +got):\n%s", diff)
	}
}

func TestReadCRDs(t *testing.T) {
	crds, err := readCRDs("testdata/crds")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, crd := range crds {
		names = append(names, crd.Name)
	}
	if diff := cmp.Diff([]string{"widgets.testcluster.herald.example"}, names); diff != "" {
		t.Errorf("CRDs read (-want +got):\n%s", diff)
	}
	if _, err := readCRDs(t.TempDir()); err == nil {
		t.Error("readCRDs of an empty dir: no error")
	}
}

func TestStartWithoutBinariesSaysHowToBuildThem(t *testing.T) {
	t.Setenv(BinDirEnv, t.TempDir())
	_, err := Start(context.Background(), Options{})
	if !errors.Is(err, ErrBinariesMissing) {
		t.Fatalf("Start error = %v, want ErrBinariesMissing", err)
	}
	if !strings.Contains(err.Error(), "make k8sbin") {
		t.Errorf("error %q does not say how to build the binaries", err)
	}
}

// A process that dies during start-up must fail Start with its own words,
// not a timeout.
func TestStartReportsCrashWithOutput(t *testing.T) {
	requireBinaries(t)
	start := time.Now()
	_, err := Start(context.Background(), Options{ExtraAPIServerArgs: []string{"--no-such-flag=1"}})
	if err == nil {
		t.Fatal("Start with a bad kube-apiserver flag succeeded")
	}
	for _, want := range []string{"starting kube-apiserver", "exited", "no-such-flag"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("crash took %v to report", d)
	}
}

func TestCluster(t *testing.T) {
	c := ForTest(t, Options{ControllerManager: true, CRDDir: "testdata/crds"})
	ctx := t.Context()
	cs := kubernetes.NewForConfigOrDie(c.Config)

	t.Run("kubeconfig", func(t *testing.T) {
		cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		v, err := kubernetes.NewForConfigOrDie(cfg).Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		if v.GitVersion != KubernetesVersion {
			t.Errorf("server version %q, want %q", v.GitVersion, KubernetesVersion)
		}
	})

	ns := createNamespace(ctx, t, cs, "web")

	t.Run("endpointslice controller", func(t *testing.T) {
		svc, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": "web"},
				Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(svc.Spec.ClusterIP, "198.19.") {
			t.Errorf("ClusterIP %s outside the service range", svc.Spec.ClusterIP)
		}
		createReadyPod(ctx, t, cs, ns, "web-1", "node-a", "198.18.0.10")

		type endpoint struct {
			Addresses []string
			NodeName  string
			Ready     bool
		}
		want := []endpoint{{Addresses: []string{"198.18.0.10"}, NodeName: "node-a", Ready: true}}
		var got []endpoint
		err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			slices, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
				LabelSelector: discoveryv1.LabelServiceName + "=web",
			})
			if err != nil {
				return false, err
			}
			got = nil
			for _, s := range slices.Items {
				for _, ep := range s.Endpoints {
					got = append(got, endpoint{
						Addresses: ep.Addresses,
						NodeName:  deref(ep.NodeName),
						Ready:     deref(ep.Conditions.Ready),
					})
				}
			}
			return cmp.Equal(want, got), nil
		})
		if err != nil {
			t.Fatalf("EndpointSlice endpoints (-want +got):\n%s", cmp.Diff(want, got))
		}
	})

	widgets := schema.GroupVersionResource{Group: "testcluster.herald.example", Version: "v1", Resource: "widgets"}
	dyn := dynamic.NewForConfigOrDie(c.Config)
	widget := func(name string, size int64) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "testcluster.herald.example/v1",
			"kind":       "Widget",
			"metadata":   map[string]any{"name": name},
			"spec":       map[string]any{"size": size},
		}}
	}

	t.Run("CRD installed with its validation", func(t *testing.T) {
		if _, err := dyn.Resource(widgets).Namespace(ns).Create(ctx, widget("small", 3), metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating a valid Widget: %v", err)
		}
		_, err := dyn.Resource(widgets).Namespace(ns).Create(ctx, widget("big", 11), metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "size must be at most 10") {
			t.Errorf("creating a Widget that breaks the CEL rule: %v, want Invalid", err)
		}
	})

	t.Run("API server restart", func(t *testing.T) {
		stopped := time.Now()
		if err := c.StopAPIServer(); err != nil {
			t.Fatal(err)
		}
		t.Logf("kube-apiserver stopped in %v", time.Since(stopped).Round(time.Millisecond))

		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cs.CoreV1().Namespaces().Get(short, ns, metav1.GetOptions{})
		cancel()
		if err == nil {
			t.Fatal("the API answered while kube-apiserver was stopped")
		}

		started := time.Now()
		if err := c.StartAPIServer(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("kube-apiserver restarted in %v", time.Since(started).Round(time.Millisecond))

		// The same clients reconnect, and etcd kept the data.
		if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
			t.Errorf("getting namespace after restart: %v", err)
		}
		if _, err := dyn.Resource(widgets).Namespace(ns).Get(ctx, "small", metav1.GetOptions{}); err != nil {
			t.Errorf("getting Widget after restart: %v", err)
		}
		if err := c.StartAPIServer(ctx); err == nil {
			t.Error("StartAPIServer while running: no error")
		}
	})

	t.Run("Stop is idempotent", func(t *testing.T) {
		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := c.Stop(); err != nil {
			t.Errorf("second Stop: %v", err)
		}
		if _, err := os.Stat(c.DataDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("data dir %s still there after Stop (%v)", c.DataDir, err)
		}
	})
}

// requireBinaries fails (not skips) t when the binaries are missing, the
// same way ForTest does.
func requireBinaries(t *testing.T) {
	t.Helper()
	if _, err := BinDir(); err != nil {
		t.Fatalf("*** NOT RUN: %v ***", err)
	}
}

func createNamespace(ctx context.Context, t *testing.T, cs kubernetes.Interface, prefix string) string {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}

// createReadyPod registers a Pod as the lab does for host-network
// backends: bound to a Node, with the status a kubelet would report.
func createReadyPod(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name, node, ip string) {
	t.Helper()
	if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: node},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating node: %v", err)
	}
	pod, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "web", Image: "none.invalid/web"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod: %v", err)
	}
	now := metav1.Now()
	pod.Status = corev1.PodStatus{
		Phase:  corev1.PodRunning,
		PodIP:  ip,
		PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
	}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("setting pod status: %v", err)
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
