package ctl

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/k8s"
)

func TestAliveNodes(t *testing.T) {
	sp := func(name string, live ...string) heraldv1.Speaker {
		return heraldv1.Speaker{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: heraldv1.SpeakerStatus{LiveMembers: live}}
	}
	for _, tc := range []struct {
		name     string
		speakers []heraldv1.Speaker
		want     map[string]bool
	}{
		{"lone speaker vouches for itself", []heraldv1.Speaker{sp("a", "a")}, map[string]bool{"a": true}},
		{"two see each other", []heraldv1.Speaker{sp("a", "a", "b"), sp("b", "a", "b")}, map[string]bool{"a": true, "b": true}},
		{"a node only it sees is dead", []heraldv1.Speaker{sp("a", "a", "b"), sp("b", "a", "b"), sp("c", "a", "b", "c")}, map[string]bool{"a": true, "b": true}},
		{"partition: each side vouches for its members", []heraldv1.Speaker{sp("a", "a", "b"), sp("b", "a", "b"), sp("c", "c", "d"), sp("d", "c", "d")},
			map[string]bool{"a": true, "b": true, "c": true, "d": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, aliveNodes(tc.speakers)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestOneSelector(t *testing.T) {
	host := func(h string) metav1.LabelSelector {
		return metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/hostname": h}}
	}
	for _, tc := range []struct {
		name   string
		in     []metav1.LabelSelector
		want   *metav1.LabelSelector
		wantOK bool
	}{
		{"none", nil, nil, true},
		{"one", []metav1.LabelSelector{host("a")}, &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/hostname": "a"}}, true},
		{"empty matches all", []metav1.LabelSelector{host("a"), {}}, nil, true},
		{"same key folds into In", []metav1.LabelSelector{host("b"), host("a"), {MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: metav1.LabelSelectorOpIn, Values: []string{"c", "a"}}}}},
			&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b", "c"}}}}, true},
		{"different keys", []metav1.LabelSelector{host("a"), {MatchLabels: map[string]string{"rack": "1"}}}, nil, false},
		{"two labels in one", []metav1.LabelSelector{host("a"), {MatchLabels: map[string]string{"kubernetes.io/hostname": "b", "rack": "1"}}}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := oneSelector(tc.in)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestNormalizeAddress(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.0/24":               "198.51.100.0/24",
		"198.51.100.7/24":               "198.51.100.0/24",
		"198.51.100.7":                  "198.51.100.7/32",
		"2001:db8::1":                   "2001:db8::1/128",
		" 198.51.100.1 - 198.51.100.9 ": "198.51.100.1-198.51.100.9",
		"198.51.100.1-2001:db8::1":      "",
		"198.51.100.9-198.51.100.1":     "",
		"2001:db8::9-2001:db8::1":       "",
		"fe80::1%eth0":                  "",
		"garbage":                       "",
	} {
		got, why := normalizeAddress(in)
		if got != want || (why == "") != (want != "") {
			t.Errorf("normalizeAddress(%q) = %q, %q; want %q", in, got, why, want)
		}
	}
}

// FuzzImport feeds arbitrary input to the MetalLB reader and converter:
// user input must never make heraldctl panic.
func FuzzImport(f *testing.F) {
	files, _ := filepath.Glob("testdata/import/*/in.yaml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var in metallbSet
		if in.read(bytes.NewReader(data)) != nil {
			return
		}
		for _, lossy := range []bool{false, true} {
			res := convert(&in, convertOptions{AllowLossy: lossy})
			if _, _, err := res.objects(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestMetalLBValue(t *testing.T) {
	for _, tc := range []struct {
		name string
		ann  map[string]string
		want mlbValue
	}{
		{"none", map[string]string{"herald.dev/pool": "a"}, mlbValue{}},
		{"old prefix", map[string]string{"metallb.universe.tf/address-pool": "a"}, mlbValue{key: "metallb.universe.tf/address-pool", value: "a"}},
		{"new prefix", map[string]string{"metallb.io/address-pool": "a"}, mlbValue{key: "metallb.io/address-pool", value: "a"}},
		{"both agree", map[string]string{"metallb.io/address-pool": "a", "metallb.universe.tf/address-pool": "a"},
			mlbValue{key: "metallb.io/address-pool", value: "a", other: "a"}},
		{"new wins", map[string]string{"metallb.io/address-pool": "a", "metallb.universe.tf/address-pool": "b"},
			mlbValue{key: "metallb.io/address-pool", value: "a", other: "b", conflict: true}},
		{"new wins even empty", map[string]string{"metallb.io/address-pool": "", "metallb.universe.tf/address-pool": "b"},
			mlbValue{key: "metallb.io/address-pool", value: "", other: "b", conflict: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, metallbValue(tc.ann, mlbAddressPool), cmp.AllowUnexported(mlbValue{})); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestMetalLBIPsProblem(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.1":                         "",
		" 198.51.100.1 , 2001:db8::1":          "",
		"::ffff:198.51.100.1,2001:db8::1":      "", // MetalLB reads the mapped address as IPv4
		"198.51.100.1,":                        "an empty entry",
		"":                                     "an empty entry",
		"198.51.100.1,198.51.100.2":            "two IPv4 addresses",
		"::ffff:198.51.100.1,198.51.100.2":     "two IPv4 addresses",
		"198.51.100.1,2001:db8::1,2001:db8::2": "more than two addresses",
		"fe80::1%eth0":                         `"fe80::1%eth0" is not an IP address`,
		"web":                                  `"web" is not an IP address`,
	} {
		if got := metallbIPsProblem(in); got != want {
			t.Errorf("metallbIPsProblem(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAnnotateCommand(t *testing.T) {
	got := annotateCommand("shop", "web", map[string]string{
		"herald.dev/share": "it's a key", "herald.dev/ips": "198.51.100.1,2001:db8::1", "herald.dev/pool": "",
	})
	want := `kubectl annotate --namespace shop service web herald.dev/ips=198.51.100.1,2001:db8::1 herald.dev/pool= 'herald.dev/share=it'\''s a key'`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := annotateCommand("", "web", map[string]string{"herald.dev/pool": "a"}); got != "kubectl annotate service web herald.dev/pool=a" {
		t.Errorf("without namespace: %s", got)
	}
	for in, want := range map[string]string{"": "''", "a b": "'a b'", "$x": "'$x'", "a;b": "'a;b'", "a,b:c/d": "a,b:c/d"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestControlPlaneManifestRefuses(t *testing.T) {
	for _, args := range [][]string{
		{"control-plane"},
		{"control-plane", "print"},
		{"control-plane", "manifest", "--peers", "198.51.100.11"},
		{"control-plane", "manifest", "--vip", "198.51.100.100"},
		{"control-plane", "manifest", "--vip", "nope", "--peers", "198.51.100.11"},
		{"control-plane", "manifest", "--vip", "198.51.100.11", "--peers", "198.51.100.11,198.51.100.12"},
		{"control-plane", "manifest", "--vip", "198.51.100.100", "--peers", "node-1"},
		{"control-plane", "manifest", "--vip", "198.51.100.100", "--peers", "198.51.100.11", "-o", "table"},
		{"control-plane", "manifest", "--vip", "198.51.100.100", "--peers", "198.51.100.11", "--image", ""},
		{"control-plane", "manifest", "--vip", "198.51.100.100", "--peers", "198.51.100.11", "--bgp-asn", "64512"},
		{"control-plane", "manifest", "--vip", "198.51.100.100", "--peers", "198.51.100.11", "--memberlist-port", "70000"},
		{"control-plane", "manifest", "--vip", "198.51.100.100", "--peers", "198.51.100.11", "--memberlist-port", "7946"},
		{"control-plane", "manifest", "--vip", "198.51.100.100", "--peers", "198.51.100.11", "--key-file", "memberlist.key"},
		{"control-plane", "manifest", "--vip", "198.51.100.100", "--peers", "198.51.100.11", "--bgp-peers", "198.51.100.1"},
		{"control-plane", "manifest", "--vip", "198.51.100.100", "--peers", "198.51.100.11", "--bgp-peers", "198.51.100.1", "--bgp-asn", "4294967296"},
		{"control-plane", "manifest", "--vip", "198.51.100.100", "--peers", "198.51.100.11", "--bgp-peers", "router", "--bgp-asn", "64512"},
		{"control-plane", "manifest", "--vip", "198.51.100.100", "--peers", "198.51.100.11", "--bgp-peers", "198.51.100.1", "--bgp-asn", "64512", "--interface", "eth0"},
	} {
		var out, errb bytes.Buffer
		if code := Main(context.Background(), Env{Out: &out, Err: &errb}, args); code == 0 {
			t.Errorf("%q: exit 0, output %s", args, out.String())
		} else if errb.Len() == 0 {
			t.Errorf("%q: exit %d without a reason on stderr", args, code)
		}
	}
}

// TestStatusHeldPool: an address of a held pool that nobody announces is
// shown as held, not as a problem; one still announced is a problem.
func TestStatusHeldPool(t *testing.T) {
	svc := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{
			Ingress: []corev1.LoadBalancerIngress{{IP: "198.51.100.7"}},
		}},
	}
	pool := heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: heraldv1.IPPoolSpec{Addresses: []string{"198.51.100.0/24"}, Hold: true}}
	rep := buildStatus(k8s.Class{Name: "herald.dev/lb"}, []corev1.Service{svc}, []heraldv1.IPPool{pool}, nil, nil)
	if len(rep.Addresses) != 1 || !rep.Addresses[0].Held || len(rep.Addresses[0].Problems) > 0 {
		t.Fatalf("held pool: %+v; want one address, held, no problem", rep.Addresses)
	}
	var out bytes.Buffer
	if err := renderStatusTable(&out, rep, time.Now()); err != nil || !strings.Contains(out.String(), "<held>") {
		t.Errorf("table of a held address (%v):\n%s\nwant <held> in NODES", err, out.String())
	}
	pool.Spec.Hold = false
	rep = buildStatus(k8s.Class{Name: "herald.dev/lb"}, []corev1.Service{svc}, []heraldv1.IPPool{pool}, nil, nil)
	if len(rep.Addresses) != 1 || rep.Addresses[0].Held || !slices.Contains(rep.Addresses[0].Problems, "announced by nobody") {
		t.Errorf("released pool: %+v; want announced by nobody", rep.Addresses)
	}
}

func TestSelectorsDisjoint(t *testing.T) {
	labels := func(kv ...string) metav1.LabelSelector {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return metav1.LabelSelector{MatchLabels: m}
	}
	expr := func(key string, op metav1.LabelSelectorOperator, vals ...string) metav1.LabelSelector {
		return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: vals}}}
	}
	list := func(s ...metav1.LabelSelector) []metav1.LabelSelector { return s }
	for _, tc := range []struct {
		name string
		a, b []metav1.LabelSelector
		want bool
	}{
		{"no selectors: every node", nil, list(labels("zone", "east")), false},
		{"other values of one key", list(labels("zone", "east")), list(labels("zone", "west")), true},
		{"same value", list(labels("zone", "east")), list(labels("zone", "east", "rack", "a")), false},
		{"other keys", list(labels("zone", "east")), list(labels("rack", "a")), false},
		{"In without the value", list(labels("zone", "east")), list(expr("zone", metav1.LabelSelectorOpIn, "west", "north")), true},
		{"In with the value", list(labels("zone", "east")), list(expr("zone", metav1.LabelSelectorOpIn, "west", "east")), false},
		{"NotIn the value", list(labels("zone", "east")), list(expr("zone", metav1.LabelSelectorOpNotIn, "east")), true},
		{"NotIn another value", list(labels("zone", "east")), list(expr("zone", metav1.LabelSelectorOpNotIn, "west")), false},
		{"Exists and DoesNotExist", list(expr("gw", metav1.LabelSelectorOpExists)), list(expr("gw", metav1.LabelSelectorOpDoesNotExist)), true},
		{"a value and DoesNotExist", list(labels("gw", "yes")), list(expr("gw", metav1.LabelSelectorOpDoesNotExist)), true},
		{"any pair may overlap", list(labels("zone", "east"), labels("zone", "west")), list(labels("zone", "west")), false},
		{"every pair disjoint", list(labels("zone", "east"), labels("zone", "north")), list(labels("zone", "west")), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := selectorsDisjoint(tc.a, tc.b); got != tc.want {
				t.Errorf("selectorsDisjoint = %v, want %v", got, tc.want)
			}
			if got := selectorsDisjoint(tc.b, tc.a); got != tc.want {
				t.Errorf("swapped: selectorsDisjoint = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUniqueLabel(t *testing.T) {
	long := strings.Repeat("a", 70)
	used := map[string]bool{}
	for _, tc := range []struct{ in, want string }{
		{"edge", "edge"},
		{"edge", "edge-2"},
		{"Edge.West_1", "edge-west-1"},
		{".-.", "advertisement"},
		{long, strings.Repeat("a", 63)},
		{long, strings.Repeat("a", 61) + "-2"},
	} {
		if got := uniqueLabel(tc.in, used); got != tc.want {
			t.Errorf("uniqueLabel(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
