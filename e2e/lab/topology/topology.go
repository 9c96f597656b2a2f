package topology

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// The herald.lab/* labels carrying the lab's own metadata.
const (
	LabelRole     = "herald.lab/role"
	LabelAddress  = "herald.lab/address"
	LabelAddress6 = "herald.lab/address6"
	LabelRouter   = "herald.lab/router"
)

// Roles a node can have (LabelRole).
const (
	RoleControlPlane = "controlplane"
	RoleNode         = "node"
	RoleClient       = "client"
	RoleRouter       = "router"
	RoleSwitch       = "switch"
)

// NamespacePrefix starts every namespace the lab creates, so that nothing
// else on the machine is ever touched by its teardown.
const NamespacePrefix = "hl-"

// file is the subset of containerlab's format the lab uses.
type file struct {
	Name     string `json:"name"`
	Topology struct {
		Defaults node            `json:"defaults"`
		Kinds    map[string]node `json:"kinds"`
		Nodes    map[string]node `json:"nodes"`
		Links    []struct {
			Endpoints []string `json:"endpoints"`
		} `json:"links"`
	} `json:"topology"`
}

type node struct {
	Kind   string            `json:"kind"`
	Image  string            `json:"image"`
	Labels map[string]string `json:"labels"`
	Exec   []string          `json:"exec"`
	Binds  []string          `json:"binds"`
	Env    map[string]string `json:"env"`
}

// Topology is a parsed, validated lab.
type Topology struct {
	Name string
	// Dir is the directory of the file; binds are relative to it.
	Dir   string
	Nodes []*Node // sorted by name
	Links []Link
}

// Node is one containerlab node: a namespace (or, for kind bridge, a
// namespace holding one bridge).
type Node struct {
	Name      string
	Kind      string // "linux" or "bridge"
	Role      string
	Router    string     // "frr" or "bird" for routers
	Address   netip.Addr // IPv4 InternalIP (zero if none)
	Address6  netip.Addr // IPv6 InternalIP (zero if none)
	Exec      []string
	Binds     map[string]string // container path -> host path (absolute)
	Env       map[string]string
	Namespace string
	// Labels are the node's labels, defaults and kind included; a kubelet
	// lab registers each node with those that are valid Kubernetes labels.
	Labels map[string]string
}

// Endpoint is one end of a link.
type Endpoint struct {
	Node  string
	Iface string
}

// Link is a veth pair.
type Link struct{ A, B Endpoint }

// Load reads and validates a topology file.
func Load(path string) (*Topology, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading topology: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	t, err := Parse(raw, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("topology %s: %w", path, err)
	}
	return t, nil
}

// Parse parses a topology; dir resolves relative binds.
func Parse(raw []byte, dir string) (*Topology, error) {
	var f file
	if err := yaml.UnmarshalStrict(raw, &f); err != nil {
		// containerlab accepts many more fields; retry leniently but
		// still catch plain syntax errors.
		if err2 := yaml.Unmarshal(raw, &f); err2 != nil {
			return nil, fmt.Errorf("parsing: %w", err2)
		}
	}
	if f.Name == "" {
		return nil, errors.New("no name")
	}
	// Namespace names are limited only by file names, but interface names
	// derived from them are not; keep names short and shell-safe.
	if !validName(f.Name) || len(f.Name) > 16 {
		return nil, fmt.Errorf("name %q: want [a-z0-9-], at most 16 characters", f.Name)
	}
	t := &Topology{Name: f.Name, Dir: dir}
	for name, n := range f.Topology.Nodes {
		if !validName(name) {
			return nil, fmt.Errorf("node name %q: want [a-z0-9-]", name)
		}
		merged := merge(f.Topology.Defaults, n)
		if k, ok := f.Topology.Kinds[merged.Kind]; ok {
			merged = merge(merge(f.Topology.Defaults, k), n)
		}
		nd := &Node{
			Name: name, Kind: merged.Kind, Exec: merged.Exec, Env: merged.Env,
			Role:      merged.Labels[LabelRole],
			Router:    merged.Labels[LabelRouter],
			Namespace: namespace(f.Name, name),
			Binds:     map[string]string{},
			Labels:    merged.Labels,
		}
		if nd.Kind == "" {
			nd.Kind = "linux"
		}
		if nd.Kind != "linux" && nd.Kind != "bridge" {
			return nil, fmt.Errorf("node %s: kind %q: the lab runner builds only linux and bridge nodes", name, nd.Kind)
		}
		if nd.Kind == "bridge" && nd.Role == "" {
			nd.Role = RoleSwitch
		}
		switch nd.Role {
		case RoleControlPlane, RoleNode, RoleClient, RoleRouter, RoleSwitch:
		default:
			return nil, fmt.Errorf("node %s: label %s=%q: want one of controlplane, node, client, router, switch", name, LabelRole, nd.Role)
		}
		if nd.Role == RoleRouter && nd.Router != "frr" && nd.Router != "bird" {
			return nil, fmt.Errorf("node %s: router needs label %s=frr or bird", name, LabelRouter)
		}
		for label, dst := range map[string]*netip.Addr{LabelAddress: &nd.Address, LabelAddress6: &nd.Address6} {
			v, ok := merged.Labels[label]
			if !ok {
				continue
			}
			a, err := netip.ParseAddr(v)
			if err != nil {
				return nil, fmt.Errorf("node %s: label %s: %w", name, label, err)
			}
			if !LabAddress(a) {
				return nil, fmt.Errorf("node %s: %s outside the lab's ranges (198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32)", name, a)
			}
			if (label == LabelAddress) != a.Is4() {
				return nil, fmt.Errorf("node %s: label %s holds %s, the wrong family", name, label, a)
			}
			*dst = a
		}
		if (nd.Role == RoleNode || nd.Role == RoleControlPlane) && !nd.Address.IsValid() {
			return nil, fmt.Errorf("node %s: role %s needs label %s", name, nd.Role, LabelAddress)
		}
		for _, b := range merged.Binds {
			parts := strings.Split(b, ":")
			if len(parts) < 2 {
				return nil, fmt.Errorf("node %s: bind %q: want host:container", name, b)
			}
			host := parts[0]
			if !filepath.IsAbs(host) {
				host = filepath.Join(dir, host)
			}
			nd.Binds[parts[1]] = host
		}
		t.Nodes = append(t.Nodes, nd)
	}
	slices.SortFunc(t.Nodes, func(a, b *Node) int { return strings.Compare(a.Name, b.Name) })
	if len(t.ByRole(RoleControlPlane)) != 1 {
		return nil, errors.New("want exactly one node with role controlplane")
	}
	seen := map[Endpoint]bool{}
	for i, l := range f.Topology.Links {
		if len(l.Endpoints) != 2 {
			return nil, fmt.Errorf("link %d: want 2 endpoints", i)
		}
		var eps [2]Endpoint
		for j, s := range l.Endpoints {
			n, iface, ok := strings.Cut(s, ":")
			if !ok || t.Node(n) == nil {
				return nil, fmt.Errorf("link %d: endpoint %q: want node:interface of a known node", i, s)
			}
			if len(iface) == 0 || len(iface) > 15 || !validName(strings.ReplaceAll(iface, ".", "-")) {
				return nil, fmt.Errorf("link %d: interface %q: want 1-15 of [a-z0-9-.]", i, iface)
			}
			ep := Endpoint{Node: n, Iface: iface}
			if seen[ep] {
				return nil, fmt.Errorf("link %d: %s used twice", i, s)
			}
			seen[ep] = true
			eps[j] = ep
		}
		t.Links = append(t.Links, Link{A: eps[0], B: eps[1]})
	}
	return t, nil
}

func namespace(instance, node string) string {
	return NamespacePrefix + "lab-" + instance + "-" + node
}

// SetInstance renames every node's namespace to hl-lab-INSTANCE-NODE, so
// that two labs of one topology (a demo and a test run) can coexist.
func (t *Topology) SetInstance(instance string) {
	for _, n := range t.Nodes {
		n.Namespace = namespace(instance, n.Name)
	}
}

// Node returns the node called name, or nil.
func (t *Topology) Node(name string) *Node {
	for _, n := range t.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// ByRole returns the nodes with role, in name order.
func (t *Topology) ByRole(role string) []*Node {
	var out []*Node
	for _, n := range t.Nodes {
		if n.Role == role {
			out = append(out, n)
		}
	}
	return out
}

// Addresses returns the node's InternalIPs, IPv4 first.
func (n *Node) Addresses() []netip.Addr {
	var out []netip.Addr
	for _, a := range []netip.Addr{n.Address, n.Address6} {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

// Iface returns the name of the node's interface on the link whose other
// end is on a node with role (e.g. the switch), or "" if none.
func (t *Topology) Iface(node, peerRole string) string {
	for _, l := range t.Links {
		for _, p := range [][2]Endpoint{{l.A, l.B}, {l.B, l.A}} {
			if p[0].Node == node && t.Node(p[1].Node).Role == peerRole {
				return p[0].Iface
			}
		}
	}
	return ""
}

var labPrefixes = []netip.Prefix{
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// LabAddress reports whether a lies in the ranges lab traffic may use.
func LabAddress(a netip.Addr) bool {
	for _, p := range labPrefixes {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

func merge(base, over node) node {
	out := base
	if over.Kind != "" {
		out.Kind = over.Kind
	}
	if over.Image != "" {
		out.Image = over.Image
	}
	out.Labels = mergeMap(base.Labels, over.Labels)
	out.Env = mergeMap(base.Env, over.Env)
	if over.Exec != nil {
		out.Exec = over.Exec
	}
	if over.Binds != nil {
		out.Binds = over.Binds
	}
	return out
}

func mergeMap(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}
