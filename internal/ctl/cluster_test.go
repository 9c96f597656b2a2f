package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/testcluster"
	"github.com/heraldlb/herald/internal/version"
)

// TestStatusAndPools writes what herald-controller and the speakers would
// (pool status, Service status, Events, Speaker reports) into a real API
// server and compares heraldctl's views with golden files in
// testdata/cluster.
func TestStatusAndPools(t *testing.T) {
	c := testcluster.ForTest(t, testcluster.Options{CRDDir: crdDir})
	ctx := context.Background()
	kube := kubernetes.NewForConfigOrDie(c.Config)
	herald := versioned.NewForConfigOrDie(c.Config).HeraldV1alpha1()
	now := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) metav1.Time { return metav1.NewTime(now.Add(-ago)) }
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	ready := func(status metav1.ConditionStatus, reason, msg string) []metav1.Condition {
		return []metav1.Condition{{Type: heraldv1.ConditionReady, Status: status, Reason: reason, Message: msg, LastTransitionTime: at(time.Hour)}}
	}
	for _, p := range []heraldv1.IPPool{
		{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: heraldv1.IPPoolSpec{Addresses: []string{"198.51.100.0/28", "2001:db8::/124"}},
			Status: heraldv1.IPPoolStatus{
				IPv4:       &heraldv1.FamilyUsage{Total: "16", Allocated: 4, Free: "12"},
				IPv6:       &heraldv1.FamilyUsage{Total: "16", Allocated: 0, Free: "16"},
				Conditions: ready(metav1.ConditionTrue, heraldv1.ReasonValid, "all addresses usable"),
			}},
		{ObjectMeta: metav1.ObjectMeta{Name: "routed"}, Spec: heraldv1.IPPoolSpec{Addresses: []string{"203.0.113.0/28"},
			Announce: heraldv1.Announce{BGP: &heraldv1.BGPAnnounce{}}},
			Status: heraldv1.IPPoolStatus{
				IPv4:       &heraldv1.FamilyUsage{Total: "16", Allocated: 1, Free: "15"},
				Conditions: ready(metav1.ConditionTrue, heraldv1.ReasonValid, "all addresses usable"),
			}},
		{ObjectMeta: metav1.ObjectMeta{Name: "late"}, Spec: heraldv1.IPPoolSpec{Addresses: []string{"198.51.100.8/29"}},
			Status: heraldv1.IPPoolStatus{
				IPv4:       &heraldv1.FamilyUsage{Total: "8", Allocated: 0, Free: "0"},
				Conditions: ready(metav1.ConditionFalse, heraldv1.ReasonOverlap, "overlaps IPPool lan"),
			}},
		{ObjectMeta: metav1.ObjectMeta{Name: "new"}, Spec: heraldv1.IPPoolSpec{Addresses: []string{"2001:db8:1::/64"}}},
	} {
		created, err := herald.IPPools().Create(ctx, &p, metav1.CreateOptions{})
		must(created, err)
		if p.Status.Conditions != nil {
			created.Status = p.Status
			must(herald.IPPools().UpdateStatus(ctx, created, metav1.UpdateOptions{}))
		}
	}

	ns := "shop"
	must(kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}))
	service := func(name string, class *string, pool string, ips ...string) {
		t.Helper()
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: class,
				AllocateLoadBalancerNodePorts: ptr.To(false),
				Ports:                         []corev1.ServicePort{{Port: 80}},
			},
		}
		if pool != "" {
			svc.Annotations = map[string]string{k8s.AnnotationPoolAllocated: pool}
		}
		svc, err := kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
		must(svc, err)
		if len(ips) == 0 {
			return
		}
		for _, ip := range ips {
			svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip, IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)})
		}
		must(kube.CoreV1().Services(ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{}))
	}
	service("web", nil, "lan", "198.51.100.1", "2001:db8::1")
	service("api", ptr.To("herald.dev/lb"), "", "203.0.113.5")
	service("orphan", nil, "lan", "198.51.100.2")
	// herald.dev/address-count "2": each address on its own node.
	service("spread", nil, "lan", "198.51.100.3", "198.51.100.4", "2001:db8::3", "2001:db8::4")
	service("stuck", nil, "")
	service("waiting", nil, "")
	service("not-ours", ptr.To("example.com/other"), "", "192.0.2.1")
	for i, msg := range []string{"PoolNotFound: an older failure", "PoolNotFound: IPPool \"gold\" does not exist"} {
		must(kube.CoreV1().Events(ns).Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: "stuck." + string(rune('a'+i)), Namespace: ns},
			InvolvedObject: corev1.ObjectReference{Kind: "Service", Namespace: ns, Name: "stuck", APIVersion: "v1"},
			Reason:         eventAllocationFailed, Message: msg, Type: corev1.EventTypeWarning,
			FirstTimestamp: at(time.Duration(10-i) * time.Minute), LastTimestamp: at(time.Duration(10-i) * time.Minute),
			Source: corev1.EventSource{Component: "herald-controller"},
		}, metav1.CreateOptions{}))
	}

	for _, s := range []heraldv1.Speaker{
		{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}, Status: heraldv1.SpeakerStatus{
			Version: "v0.1.0", Healthy: true, Members: 2, LiveMembers: []string{"node-a", "node-b"}, Layer2Count: 4, BGPCount: 1,
			Announcements: []heraldv1.Announcement{
				{Address: "198.51.100.1", Protocol: "layer2", Pool: "lan", Services: []string{"shop/web"}, Via: []string{"eth0"}, Since: at(5 * time.Minute)},
				{Address: "2001:db8::1", Protocol: "layer2", Pool: "lan", Services: []string{"shop/web"}, Via: []string{"eth0"}, Since: at(5 * time.Minute)},
				{Address: "198.51.100.3", Protocol: "layer2", Pool: "lan", Services: []string{"shop/spread"}, Via: []string{"eth0"}, Since: at(4 * time.Minute)},
				{Address: "2001:db8::3", Protocol: "layer2", Pool: "lan", Services: []string{"shop/spread"}, Via: []string{"eth0"}, Since: at(4 * time.Minute)},
				{Address: "203.0.113.5", Protocol: "bgp", Pool: "routed", Services: []string{"shop/api"}, Via: []string{"tor"}, Since: at(3 * time.Hour)},
			},
			BGPSessions: []heraldv1.BGPSession{{Peer: "tor", Up: true}},
			Updated:     at(time.Minute),
		}},
		{ObjectMeta: metav1.ObjectMeta{Name: "node-b"}, Status: heraldv1.SpeakerStatus{
			Version: "v0.1.0", Healthy: true, Members: 2, LiveMembers: []string{"node-a", "node-b"}, Layer2Count: 2, BGPCount: 1,
			Announcements: []heraldv1.Announcement{
				{Address: "198.51.100.4", Protocol: "layer2", Pool: "lan", Services: []string{"shop/spread"}, Via: []string{"eth0"}, Since: at(4 * time.Minute)},
				{Address: "2001:db8::4", Protocol: "layer2", Pool: "lan", Services: []string{"shop/spread"}, Via: []string{"eth0"}, Since: at(4 * time.Minute)},
				{Address: "203.0.113.5", Protocol: "bgp", Pool: "routed", Services: []string{"shop/api"}, Via: []string{"tor"}, Since: at(2 * time.Hour)},
			},
			BGPSessions: []heraldv1.BGPSession{{Peer: "tor", Up: false}},
			Updated:     at(time.Minute),
		}},
		// node-c stopped without withdrawing its report: nobody sees it.
		{ObjectMeta: metav1.ObjectMeta{Name: "node-c"}, Status: heraldv1.SpeakerStatus{
			Healthy: true, Members: 3, LiveMembers: []string{"node-a", "node-b", "node-c"}, Layer2Count: 1,
			Announcements: []heraldv1.Announcement{
				{Address: "198.51.100.2", Protocol: "layer2", Pool: "lan", Services: []string{"shop/orphan"}, Since: at(time.Hour)},
			},
			Updated: at(time.Hour),
		}},
	} {
		created, err := herald.Speakers().Create(ctx, &heraldv1.Speaker{ObjectMeta: s.ObjectMeta}, metav1.CreateOptions{})
		must(created, err)
		created.Status = s.Status
		must(herald.Speakers().UpdateStatus(ctx, created, metav1.UpdateOptions{}))
	}

	installMetalLB(t, c.Config)

	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"status.txt", []string{"status"}},
		{"status.yaml", []string{"status", "-o", "yaml"}},
		{"pools.txt", []string{"--kubeconfig", c.Kubeconfig, "pools"}},
		{"pools.json", []string{"pools", "-o", "json"}},
		{"import-metallb.yaml", []string{"import-metallb"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var out, errb bytes.Buffer
			env := Env{Out: &out, Err: &errb, Now: func() time.Time { return now }}
			if tc.args[0] != "--kubeconfig" {
				env.Config = c.Config
			}
			if code := Main(ctx, env, tc.args); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			golden(t, filepath.Join("testdata/cluster", tc.golden), out.String()+errb.String())
		})
	}

	t.Run("status -n", func(t *testing.T) {
		var out, errb bytes.Buffer
		env := Env{Out: &out, Err: &errb, Now: func() time.Time { return now }, Config: c.Config}
		if code := Main(ctx, env, []string{"status", "-n", "default"}); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		if strings.Contains(out.String(), "shop/") {
			t.Errorf("status -n default lists Services of namespace shop:\n%s", out.String())
		}
	})
	// kubectl takes -n before the command too (kubectl herald -n x status).
	t.Run("-n status", func(t *testing.T) {
		outputs := map[string]string{}
		for _, args := range [][]string{{"-n", "shop", "status"}, {"status", "-n", "shop"}} {
			var out, errb bytes.Buffer
			env := Env{Out: &out, Err: &errb, Now: func() time.Time { return now }, Config: c.Config}
			if code := Main(ctx, env, args); code != 0 {
				t.Fatalf("%q: exit %d: %s", args, code, errb.String())
			}
			outputs[strings.Join(args, " ")] = out.String()
		}
		before, after := outputs["-n shop status"], outputs["status -n shop"]
		if before != after || !strings.Contains(before, "shop/") || strings.Contains(before, "default/") {
			t.Errorf("-n shop status:\n%s\nstatus -n shop:\n%s\nwant the same, only shop's Services", before, after)
		}
	})

	t.Run("status -A", func(t *testing.T) {
		run := func(args ...string) (string, string, int) {
			var out, errb bytes.Buffer
			env := Env{Out: &out, Err: &errb, Now: func() time.Time { return now }, Config: c.Config}
			code := Main(ctx, env, args)
			return out.String(), errb.String(), code
		}
		all, _, _ := run("status")
		for _, flag := range []string{"-A", "--all-namespaces"} {
			out, errs, code := run("status", flag)
			if code != 0 || out != all {
				t.Errorf("status %s: exit %d, %s\n%s\nwant what status prints:\n%s", flag, code, errs, out, all)
			}
		}
		if _, errs, code := run("-n", "shop", "status", "-A"); code != exitUsage || !strings.Contains(errs, "give one") {
			t.Errorf("-n shop status -A: exit %d, %q; want a usage error", code, errs)
		}
	})

	// The controller Pod cannot run here (no kubelet), so its version is
	// reported as unknown with the reason; the speakers' come from their
	// Speaker objects. The Pod proxy path is exercised in the kubelet lab.
	t.Run("version", func(t *testing.T) {
		must(kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "herald-system"}}, metav1.CreateOptions{}))
		must(kube.CoreV1().Pods("herald-system").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "herald-controller-1", Labels: map[string]string{
				"app.kubernetes.io/name": "herald", "app.kubernetes.io/component": "controller"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "controller", Image: "ghcr.io/heraldlb/herald-controller:v0.1.0"}}},
		}, metav1.CreateOptions{}))
		var out, errb bytes.Buffer
		env := Env{Out: &out, Err: &errb, Now: func() time.Time { return now }, Config: c.Config}
		if code := Main(ctx, env, []string{"version", "-o", "json"}); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		var got []componentVersion
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("%v in %s", err, out.String())
		}
		for i := range got {
			got[i].Revision = "" // the test binary's revision varies
		}
		want := []componentVersion{
			{Component: "heraldctl", Name: "-", Version: version.Get().Version},
			{Component: "controller", Name: "herald-controller-1", Version: "-", Problem: "Pod is Pending"},
			{Component: "speaker", Name: "node-a", Version: "v0.1.0"},
			{Component: "speaker", Name: "node-b", Version: "v0.1.0"},
			{Component: "speaker", Name: "node-c", Version: "-", Problem: "its Speaker status has no version (a speaker older than v0.1.0, or not reporting)"},
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("heraldctl version (-want +got):\n%s", d)
		}
	})

	// The control-plane static Pod is one the API server accepts, in both
	// output formats (the kubelet reads either).
	t.Run("control-plane manifest", func(t *testing.T) {
		for _, format := range []string{"yaml", "json"} {
			var out, errb bytes.Buffer
			args := []string{"control-plane", "manifest", "--vip", "198.51.100.100,2001:db8::100", "--peers", "198.51.100.11,198.51.100.12,198.51.100.13", "--interface", "eth0", "-o", format}
			if code := Main(ctx, Env{Out: &out, Err: &errb}, args); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			var pod corev1.Pod
			if err := yaml.UnmarshalStrict(out.Bytes(), &pod); err != nil {
				t.Fatalf("%s: %v in\n%s", format, err, out.String())
			}
			if _, err := kube.CoreV1().Pods("kube-system").Create(ctx, &pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Errorf("%s: the API server refuses the static Pod: %v", format, err)
			}
			wantArgs := []string{"control-plane", "--vip=198.51.100.100,2001:db8::100", "--peers=198.51.100.11:7948,198.51.100.12:7948,198.51.100.13:7948",
				"--memberlist-key-file=/etc/herald/memberlist/memberlist.key", "--apiserver-ca-file=/etc/kubernetes/pki/ca.crt", "--interface=eth0"}
			if d := cmp.Diff(wantArgs, pod.Spec.Containers[0].Args); d != "" {
				t.Errorf("%s: args (-want +got):\n%s", format, d)
			}
		}
	})
}

// installMetalLB serves MetalLB's kinds (with schemas that accept anything:
// the point is the dynamic read, not MetalLB's validation), creates the
// objects of testdata/import/bgp-communities in metallb-system, and gives
// two Services of namespace shop MetalLB annotations. Neither is herald's
// (one has another class, the other is no LoadBalancer), so the status
// views do not change.
func installMetalLB(t *testing.T, cfg *rest.Config) {
	t.Helper()
	ctx := context.Background()
	ext := apiextensionsclient.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	kube := kubernetes.NewForConfigOrDie(cfg)
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "metallb-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{ // kind -> version
		"IPAddressPool": "v1beta1", "L2Advertisement": "v1beta1", "BGPAdvertisement": "v1beta1",
		"Community": "v1beta1", "BGPPeer": "v1beta2",
	}
	plural := func(kind string) string {
		if kind == "Community" {
			return "communities"
		}
		return strings.ToLower(kind) + "s"
	}
	for kind, version := range kinds {
		crd := &apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: plural(kind) + ".metallb.io"},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: "metallb.io", Scope: apiextensionsv1.NamespaceScoped,
				Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: plural(kind), Kind: kind},
				Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
					Name: version, Served: true, Storage: true,
					Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
						Type: "object", XPreserveUnknownFields: ptr.To(true),
					}},
				}},
			},
		}
		if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile("testdata/import/bgp-communities/in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var obj unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
			t.Fatal(err)
		}
		gv, _ := schema.ParseGroupVersion(obj.GetAPIVersion())
		gvr := gv.WithResource(plural(obj.GetKind()))
		// A new CRD takes a moment to be served.
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := dyn.Resource(gvr).Namespace("metallb-system").Create(ctx, &obj, metav1.CreateOptions{})
			return err == nil, nil
		})
		if err != nil {
			t.Fatalf("creating %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
	for _, svc := range []*corev1.Service{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "legacy-dns", Namespace: "shop", Annotations: map[string]string{
				"metallb.io/address-pool":             "internal",
				"metallb.universe.tf/allow-shared-ip": "dns",
			}},
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To("example.com/metallb"),
				AllocateLoadBalancerNodePorts: ptr.To(false),
				Ports:                         []corev1.ServicePort{{Port: 53, Protocol: corev1.ProtocolUDP}},
			},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "metrics", Namespace: "shop", Annotations: map[string]string{
				"metallb.io/address-pool": "internal",
			}},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 9090}}},
		},
	} {
		if _, err := kube.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestImportDryRun sends every object import-metallb prints for every
// import case, with and without --allow-lossy, to a real API server with
// herald's CRDs as a server-side dry run: what the importer converts must
// be what herald's API accepts, CEL rules included. Refusals are checked
// by TestImportGolden; here nothing printed may be refused.
func TestImportDryRun(t *testing.T) {
	c := testcluster.ForTest(t, testcluster.Options{CRDDir: crdDir})
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(c.Config)
	resources := map[string]string{"IPPool": "ippools", "BGPPeer": "bgppeers"}
	accepted := 0
	for _, dir := range importCases(t) {
		for _, mode := range importModes {
			out, _, _ := runImport(dir, mode.args...)
			for _, obj := range yamlObjects(t, []byte(out)) {
				u := unstructured.Unstructured{Object: obj}
				gvr := heraldv1.SchemeGroupVersion.WithResource(resources[u.GetKind()])
				// A new CRD takes a moment to be served.
				var err error
				_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
					_, err = dyn.Resource(gvr).Create(ctx, &u, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
					return err == nil || !apierrors.IsNotFound(err), nil
				})
				if err != nil {
					t.Errorf("%s %s: the API server refuses %s %s: %v", filepath.Base(dir), mode.args, u.GetKind(), u.GetName(), err)
					continue
				}
				accepted++
			}
		}
	}
	if accepted == 0 {
		t.Fatal("no object was sent")
	}
	t.Logf("%d objects accepted by a server-side dry run", accepted)
}
