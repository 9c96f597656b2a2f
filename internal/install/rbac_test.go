package install

import (
	"os"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

const namespace = "herald-system"

// access is one API request a ServiceAccount makes (or must never make).
// ns "" is a cluster-wide request (all namespaces, or a cluster-scoped
// resource).
type access struct {
	sa, verb, group, resource, name, ns string
}

// needed lists what the code does with the API (internal/controller,
// internal/speaker, cmd/*); every entry must be allowed.
var needed = []access{
	// herald-controller
	{sa: "herald-controller", verb: "list", resource: "services"},
	{sa: "herald-controller", verb: "watch", resource: "services"},
	{sa: "herald-controller", verb: "patch", resource: "services", ns: "default", name: "web"},
	{sa: "herald-controller", verb: "update", resource: "services/status", ns: "default", name: "web"},
	{sa: "herald-controller", verb: "list", resource: "namespaces"},
	{sa: "herald-controller", verb: "watch", resource: "namespaces"},
	{sa: "herald-controller", verb: "create", resource: "events", ns: "default"},
	{sa: "herald-controller", verb: "patch", resource: "events", ns: "default"},
	{sa: "herald-controller", verb: "list", group: "herald.dev", resource: "ippools"},
	{sa: "herald-controller", verb: "watch", group: "herald.dev", resource: "ippools"},
	{sa: "herald-controller", verb: "update", group: "herald.dev", resource: "ippools", name: "lan"},
	{sa: "herald-controller", verb: "update", group: "herald.dev", resource: "ippools/status", name: "lan"},
	{sa: "herald-controller", verb: "list", group: "herald.dev", resource: "bgppeers"},
	{sa: "herald-controller", verb: "watch", group: "herald.dev", resource: "bgppeers"},
	{sa: "herald-controller", verb: "update", group: "herald.dev", resource: "bgppeers/status", name: "tor-a"},
	{sa: "herald-controller", verb: "list", group: "herald.dev", resource: "speakers"},
	{sa: "herald-controller", verb: "watch", group: "herald.dev", resource: "speakers"},
	{sa: "herald-controller", verb: "create", group: "coordination.k8s.io", resource: "leases", ns: namespace},
	{sa: "herald-controller", verb: "get", group: "coordination.k8s.io", resource: "leases", ns: namespace, name: "herald-controller"},
	{sa: "herald-controller", verb: "update", group: "coordination.k8s.io", resource: "leases", ns: namespace, name: "herald-controller"},
	// herald-speaker
	{sa: "herald-speaker", verb: "list", resource: "services"},
	{sa: "herald-speaker", verb: "watch", resource: "services"},
	{sa: "herald-speaker", verb: "list", group: "discovery.k8s.io", resource: "endpointslices"},
	{sa: "herald-speaker", verb: "watch", group: "discovery.k8s.io", resource: "endpointslices"},
	{sa: "herald-speaker", verb: "get", resource: "nodes", name: "node-1"},
	{sa: "herald-speaker", verb: "list", resource: "nodes"},
	{sa: "herald-speaker", verb: "watch", resource: "nodes"},
	{sa: "herald-speaker", verb: "create", resource: "events", ns: "default"},
	{sa: "herald-speaker", verb: "patch", resource: "events", ns: "default"},
	{sa: "herald-speaker", verb: "list", group: "herald.dev", resource: "ippools"},
	{sa: "herald-speaker", verb: "watch", group: "herald.dev", resource: "ippools"},
	{sa: "herald-speaker", verb: "list", group: "herald.dev", resource: "bgppeers"},
	{sa: "herald-speaker", verb: "watch", group: "herald.dev", resource: "bgppeers"},
	{sa: "herald-speaker", verb: "get", group: "herald.dev", resource: "speakers", name: "node-1"},
	{sa: "herald-speaker", verb: "create", group: "herald.dev", resource: "speakers"},
	{sa: "herald-speaker", verb: "update", group: "herald.dev", resource: "speakers/status", name: "node-1"},
	{sa: "herald-speaker", verb: "list", resource: "secrets", ns: namespace},
	{sa: "herald-speaker", verb: "watch", resource: "secrets", ns: namespace},
}

// forbidden lists what least privilege (docs/security.md) rules out; every entry
// must be denied.
var forbidden = []access{
	// The speaker only reads Services; the controller writes them.
	{sa: "herald-speaker", verb: "create", resource: "services", ns: "default"},
	{sa: "herald-speaker", verb: "update", resource: "services", ns: "default", name: "web"},
	{sa: "herald-speaker", verb: "patch", resource: "services", ns: "default", name: "web"},
	{sa: "herald-speaker", verb: "delete", resource: "services", ns: "default", name: "web"},
	{sa: "herald-speaker", verb: "update", resource: "services/status", ns: "default", name: "web"},
	{sa: "herald-speaker", verb: "patch", resource: "services/status", ns: "default", name: "web"},
	{sa: "herald-speaker", verb: "update", group: "herald.dev", resource: "ippools", name: "lan"},
	{sa: "herald-speaker", verb: "delete", group: "herald.dev", resource: "speakers", name: "node-1"},
	// Secrets: the controller never; the speaker only in its namespace,
	// and never writes them.
	{sa: "herald-controller", verb: "get", resource: "secrets", ns: namespace, name: "herald-memberlist"},
	{sa: "herald-controller", verb: "list", resource: "secrets", ns: namespace},
	{sa: "herald-controller", verb: "list", resource: "secrets"},
	{sa: "herald-controller", verb: "watch", resource: "secrets", ns: "default"},
	{sa: "herald-speaker", verb: "list", resource: "secrets"},
	{sa: "herald-speaker", verb: "list", resource: "secrets", ns: "default"},
	{sa: "herald-speaker", verb: "get", resource: "secrets", ns: "kube-system", name: "x"},
	{sa: "herald-speaker", verb: "update", resource: "secrets", ns: namespace, name: "herald-memberlist"},
	// Nothing else the controller does not need.
	{sa: "herald-controller", verb: "list", resource: "nodes"},
	{sa: "herald-controller", verb: "list", resource: "pods"},
	{sa: "herald-controller", verb: "delete", resource: "services", ns: "default", name: "web"},
	{sa: "herald-controller", verb: "get", resource: "services", ns: "default", name: "web"},
	{sa: "herald-controller", verb: "get", group: "herald.dev", resource: "ippools", name: "lan"},
	{sa: "herald-controller", verb: "get", group: "herald.dev", resource: "speakers", name: "node-1"},
	{sa: "herald-controller", verb: "create", group: "herald.dev", resource: "speakers"},
	{sa: "herald-controller", verb: "update", group: "coordination.k8s.io", resource: "leases", ns: namespace, name: "other"},
	{sa: "herald-controller", verb: "create", group: "coordination.k8s.io", resource: "leases", ns: "default"},
}

// grants is the RBAC in a manifest: each ServiceAccount's rules, with the
// namespace they apply in ("" for a ClusterRole bound cluster-wide).
type grants map[string][]scopedRule

type scopedRule struct {
	ns   string
	rule rbacv1.PolicyRule
}

func grantsOf(t *testing.T, manifest []byte) grants {
	t.Helper()
	objs, err := Objects(manifest)
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string][]rbacv1.PolicyRule{} // "Kind/ns/name"
	var crbs []rbacv1.ClusterRoleBinding
	var rbs []rbacv1.RoleBinding
	for _, o := range objs {
		if o.GroupVersionKind().Group != rbacv1.GroupName {
			continue
		}
		conv := runtime.DefaultUnstructuredConverter
		switch o.GetKind() {
		case "ClusterRole":
			var r rbacv1.ClusterRole
			if err := conv.FromUnstructured(o.Object, &r); err != nil {
				t.Fatal(err)
			}
			roles["ClusterRole//"+r.Name] = r.Rules
		case "Role":
			var r rbacv1.Role
			if err := conv.FromUnstructured(o.Object, &r); err != nil {
				t.Fatal(err)
			}
			roles["Role/"+r.Namespace+"/"+r.Name] = r.Rules
		case "ClusterRoleBinding":
			var b rbacv1.ClusterRoleBinding
			if err := conv.FromUnstructured(o.Object, &b); err != nil {
				t.Fatal(err)
			}
			crbs = append(crbs, b)
		case "RoleBinding":
			var b rbacv1.RoleBinding
			if err := conv.FromUnstructured(o.Object, &b); err != nil {
				t.Fatal(err)
			}
			rbs = append(rbs, b)
		}
	}
	g := grants{}
	bind := func(subjects []rbacv1.Subject, ns string, rules []rbacv1.PolicyRule, ok bool, what string) {
		if !ok {
			t.Errorf("%s refers to a role the manifest does not define", what)
		}
		for _, s := range subjects {
			if s.Kind != rbacv1.ServiceAccountKind || s.Namespace != namespace {
				t.Errorf("%s binds %s %s/%s; want only ServiceAccounts in %s", what, s.Kind, s.Namespace, s.Name, namespace)
				continue
			}
			for _, r := range rules {
				g[s.Name] = append(g[s.Name], scopedRule{ns: ns, rule: r})
			}
		}
	}
	for _, b := range crbs {
		rules, ok := roles["ClusterRole//"+b.RoleRef.Name]
		bind(b.Subjects, "", rules, ok && b.RoleRef.Kind == "ClusterRole", "ClusterRoleBinding "+b.Name)
	}
	for _, b := range rbs {
		key := b.RoleRef.Kind + "/" + b.Namespace + "/" + b.RoleRef.Name
		if b.RoleRef.Kind == "ClusterRole" {
			key = "ClusterRole//" + b.RoleRef.Name
		}
		rules, ok := roles[key]
		bind(b.Subjects, b.Namespace, rules, ok, "RoleBinding "+b.Namespace+"/"+b.Name)
	}
	return g
}

// allows reports whether the grants let a.sa do a, by RBAC's rules: a
// namespaced grant covers only requests in its namespace, and a rule with
// resourceNames covers only requests for those names.
func (g grants) allows(a access) bool {
	for _, sr := range g[a.sa] {
		r := sr.rule
		if sr.ns != "" && sr.ns != a.ns {
			continue
		}
		if !has(r.Verbs, a.verb) || !has(r.APIGroups, a.group) || !has(r.Resources, a.resource) {
			continue
		}
		if len(r.ResourceNames) > 0 && (a.name == "" || !slices.Contains(r.ResourceNames, a.name)) {
			continue
		}
		return true
	}
	return false
}

func has(list []string, s string) bool {
	return slices.Contains(list, s) || slices.Contains(list, rbacv1.ResourceAll)
}

func readInstall(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../manifests/install.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRBACLeastPrivilege checks install.yaml's RBAC offline: everything
// the code does is granted, nothing on the forbidden list is, and no rule
// uses a wildcard. TestInstall asks a real API server the same questions.
func TestRBACLeastPrivilege(t *testing.T) {
	g := grantsOf(t, readInstall(t))
	for _, a := range needed {
		if !g.allows(a) {
			t.Errorf("%s cannot %s %s", a.sa, a.verb, a.describe())
		}
	}
	for _, a := range forbidden {
		if g.allows(a) {
			t.Errorf("%s can %s %s; it must not", a.sa, a.verb, a.describe())
		}
	}
	for sa, rules := range g {
		for _, sr := range rules {
			r := sr.rule
			for _, l := range [][]string{r.Verbs, r.APIGroups, r.Resources} {
				if slices.Contains(l, rbacv1.ResourceAll) {
					t.Errorf("%s has a wildcard rule: %+v", sa, r)
				}
			}
			if len(r.NonResourceURLs) > 0 {
				t.Errorf("%s has a non-resource rule: %+v", sa, r)
			}
		}
	}
}

func (a access) describe() string {
	s := a.resource
	if a.group != "" {
		s += "." + a.group
	}
	if a.name != "" {
		s += " " + a.name
	}
	if a.ns != "" {
		return s + " in namespace " + a.ns
	}
	return s + " cluster-wide"
}
