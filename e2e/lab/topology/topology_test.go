package topology

import (
	"path/filepath"
	"testing"
)

// The shipped topologies must parse: they are what the lab, the demo and
// the e2e scenarios build.
func TestShippedTopologies(t *testing.T) {
	files, err := filepath.Glob("../../topologies/*.clab.yml")
	if err != nil || len(files) < 2 {
		t.Fatalf("want at least 2 topologies, got %v (%v)", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			top, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(top.ByRole(RoleNode)) != 3 || len(top.ByRole(RoleClient)) != 1 {
				t.Errorf("want 3 nodes and 1 client, got %d and %d", len(top.ByRole(RoleNode)), len(top.ByRole(RoleClient)))
			}
			for _, n := range top.Nodes {
				if n.Namespace[:3] != NamespacePrefix {
					t.Errorf("namespace %s lacks the %s prefix", n.Namespace, NamespacePrefix)
				}
				if n.Role == RoleNode && top.Iface(n.Name, RoleSwitch) == "" {
					t.Errorf("node %s is not on the switch", n.Name)
				}
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	for name, in := range map[string]string{
		"no name":          "topology: {nodes: {cp: {labels: {herald.lab/role: controlplane, herald.lab/address: 198.51.100.2}}}}",
		"foreign address":  "name: x\ntopology: {nodes: {cp: {labels: {herald.lab/role: controlplane, herald.lab/address: 192.0.2.2}}}}",
		"wrong family":     "name: x\ntopology: {nodes: {cp: {labels: {herald.lab/role: controlplane, herald.lab/address: 2001:db8::2}}}}",
		"no control plane": "name: x\ntopology: {nodes: {n: {labels: {herald.lab/role: client}}}}",
		"unknown kind":     "name: x\ntopology: {nodes: {cp: {kind: nokia_srlinux, labels: {herald.lab/role: controlplane, herald.lab/address: 198.51.100.2}}}}",
		"bad endpoint": "name: x\ntopology: {nodes: {cp: {labels: {herald.lab/role: controlplane, herald.lab/address: 198.51.100.2}}}, " +
			"links: [{endpoints: [\"cp:eth1\", \"nope:eth1\"]}]}",
	} {
		if _, err := Parse([]byte(in), "/"); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
}
