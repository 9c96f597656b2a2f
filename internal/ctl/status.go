package ctl

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/heraldlb/herald/internal/allocator"
	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/k8s"
)

// defaultClass is herald-controller's default --load-balancer-class;
// Services with that class or none are herald's.
const defaultClass = "herald.dev/lb"

// eventAllocationFailed is the reason of the controller's Warning Events
// for a Service it could not give an address.
const eventAllocationFailed = "AllocationFailed"

// maxListedAnnouncements is how many announcements a Speaker object lists
// (herald-speaker's cap, see SpeakerStatus.Announcements).
const maxListedAnnouncements = 1000

// StatusReport is `heraldctl status` as data (-o yaml|json).
type StatusReport struct {
	// Addresses are every address a Service of herald's holds or a node
	// announces, sorted by Service then address.
	Addresses []AddressStatus `json:"addresses"`
	// Pending are herald's LoadBalancer Services without an address.
	Pending []PendingService `json:"pending,omitempty"`
	// Nodes are the speakers' reports.
	Nodes []NodeStatus `json:"nodes"`
}

// AddressStatus is one address and who announces it.
type AddressStatus struct {
	Services   []string         `json:"services"`
	Address    string           `json:"address"`
	Pool       string           `json:"pool,omitempty"`
	Protocols  []string         `json:"protocols,omitempty"`
	Announcers []Announcer      `json:"announcers,omitempty"`
	Since      *metav1.Time     `json:"since,omitempty"`
	Problems   []string         `json:"problems,omitempty"`
	Stale      []StaleAnnouncer `json:"staleReports,omitempty"`
	// Held: the address's pool has spec.hold, so nobody announces it on
	// purpose.
	Held bool `json:"held,omitempty"`
}

// Announcer is one live node announcing an address over one protocol.
type Announcer struct {
	Node     string      `json:"node"`
	Protocol string      `json:"protocol"`
	Via      []string    `json:"via,omitempty"`
	Since    metav1.Time `json:"since"`
}

// StaleAnnouncer is an announcement claimed by a Speaker object whose
// node no live speaker sees: it stopped without withdrawing its report.
type StaleAnnouncer struct {
	Node     string `json:"node"`
	Protocol string `json:"protocol"`
}

// PendingService is a Service of herald's still waiting for an address.
type PendingService struct {
	Service string `json:"service"`
	Reason  string `json:"reason"`
}

// NodeStatus is one Speaker object.
type NodeStatus struct {
	Node        string                `json:"node"`
	Alive       bool                  `json:"alive"`
	Healthy     bool                  `json:"healthy"`
	Members     int32                 `json:"members"`
	Layer2      int32                 `json:"layer2"`
	BGP         int32                 `json:"bgp"`
	BGPSessions []heraldv1.BGPSession `json:"bgpSessions,omitempty"`
	Updated     *metav1.Time          `json:"updated,omitempty"`
}

func status(ctx context.Context, env Env, c *clients, class, namespace, format string) error {
	svcs, err := c.kube.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing Services: %w", err)
	}
	pools, err := c.herald.HeraldV1alpha1().IPPools().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing IPPools: %w", err)
	}
	speakers, err := c.herald.HeraldV1alpha1().Speakers().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing Speakers: %w", err)
	}
	events, err := c.kube.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "reason=" + eventAllocationFailed})
	if err != nil {
		return fmt.Errorf("listing Events: %w", err)
	}
	rep := buildStatus(k8s.Class{Name: class}, svcs.Items, pools.Items, speakers.Items, events.Items)
	if namespace != "" {
		rep.Addresses = inNamespace(rep.Addresses, namespace)
	}
	if format != "table" {
		return printStructured(env.Out, format, rep)
	}
	return renderStatusTable(env.Out, rep, env.Now())
}

// inNamespace keeps the addresses held by a Service of namespace: the
// speakers' reports name Services of every namespace, and addresses no
// Service holds belong to none.
func inNamespace(addrs []AddressStatus, namespace string) []AddressStatus {
	return slices.DeleteFunc(addrs, func(a AddressStatus) bool {
		return !slices.ContainsFunc(a.Services, func(s string) bool { return strings.HasPrefix(s, namespace+"/") })
	})
}

// aliveNodes returns the nodes some other speaker sees alive. A lone
// speaker has no other to vouch for it and counts as alive if it lists
// itself.
func aliveNodes(speakers []heraldv1.Speaker) map[string]bool {
	alive := map[string]bool{}
	for _, s := range speakers {
		for _, m := range s.Status.LiveMembers {
			if m != s.Name || len(speakers) == 1 {
				alive[m] = true
			}
		}
	}
	return alive
}

func buildStatus(class k8s.Class, svcs []corev1.Service, pools []heraldv1.IPPool, speakers []heraldv1.Speaker, events []corev1.Event) StatusReport {
	rep := StatusReport{Addresses: []AddressStatus{}, Nodes: []NodeStatus{}}
	alive := aliveNodes(speakers)

	byAddr := map[string]*AddressStatus{}
	var order []string
	get := func(addr string) *AddressStatus {
		if a, ok := byAddr[addr]; ok {
			return a
		}
		a := &AddressStatus{Address: addr}
		byAddr[addr] = a
		order = append(order, addr)
		return a
	}

	lastFailure := latestEvents(events)
	for i := range svcs {
		svc := &svcs[i]
		_, annotated := svc.Annotations[k8s.AnnotationPoolAllocated]
		if !class.Handles(svc) && !annotated {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		addrs := k8s.StatusAddrs(svc)
		if len(addrs) == 0 {
			if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
				continue
			}
			reason := "no address assigned yet (no AllocationFailed Event)"
			if ev, ok := lastFailure[key]; ok {
				reason = ev.Message
			}
			rep.Pending = append(rep.Pending, PendingService{Service: key, Reason: reason})
			continue
		}
		for _, ip := range addrs {
			a := get(ip.String())
			a.Services = append(a.Services, key)
			if p := svc.Annotations[k8s.AnnotationPoolAllocated]; p != "" && a.Pool == "" {
				a.Pool = p
			}
		}
	}

	var partial []string // live nodes whose report lists only part of what they announce
	for _, s := range speakers {
		if alive[s.Name] && s.Status.AnnouncementsOmitted > 0 {
			partial = append(partial, s.Name)
		}
		for _, an := range s.Status.Announcements {
			a := get(an.Address)
			if !alive[s.Name] {
				a.Stale = append(a.Stale, StaleAnnouncer{Node: s.Name, Protocol: an.Protocol})
				continue
			}
			a.Announcers = append(a.Announcers, Announcer{Node: s.Name, Protocol: an.Protocol, Via: an.Via, Since: an.Since})
			if !slices.Contains(a.Protocols, an.Protocol) {
				a.Protocols = append(a.Protocols, an.Protocol)
			}
			if a.Since == nil || an.Since.Before(a.Since) {
				a.Since = an.Since.DeepCopy()
			}
			if a.Pool == "" {
				a.Pool = an.Pool
			}
			for _, svc := range an.Services {
				if !slices.Contains(a.Services, svc) {
					a.Services = append(a.Services, svc)
				}
			}
		}
		ns := NodeStatus{
			Node: s.Name, Alive: alive[s.Name], Healthy: s.Status.Healthy, Members: s.Status.Members,
			Layer2: s.Status.Layer2Count, BGP: s.Status.BGPCount, BGPSessions: s.Status.BGPSessions,
		}
		if !s.Status.Updated.IsZero() {
			ns.Updated = s.Status.Updated.DeepCopy()
		}
		rep.Nodes = append(rep.Nodes, ns)
	}

	for _, addr := range order {
		a := byAddr[addr]
		slices.Sort(a.Services)
		slices.Sort(a.Protocols)
		slices.SortFunc(a.Announcers, func(x, y Announcer) int {
			return strings.Compare(x.Protocol+"/"+x.Node, y.Protocol+"/"+y.Node)
		})
		if a.Pool == "" {
			a.Pool = containingPool(pools, addr)
		}
		a.Held = poolHeld(pools, a.Pool)
		if a.Held {
			if len(a.Announcers) > 0 {
				a.Problems = append(a.Problems, "announced although its pool is held (speakers not yet updated?)")
			}
		} else if len(a.Announcers) == 0 && len(partial) > 0 {
			a.Problems = append(a.Problems, fmt.Sprintf("not in the Speaker reports: %s list only their first %d announcements (by address)",
				strings.Join(partial, ","), maxListedAnnouncements))
		} else if len(a.Announcers) == 0 {
			a.Problems = append(a.Problems, "announced by nobody")
		}
		for _, st := range a.Stale {
			a.Problems = append(a.Problems, fmt.Sprintf("stale %s report from %s (no live speaker sees it)", st.Protocol, st.Node))
		}
		if len(a.Services) == 0 {
			a.Problems = append(a.Problems, "announced but held by no Service of herald's")
		}
		rep.Addresses = append(rep.Addresses, *a)
	}
	slices.SortFunc(rep.Addresses, func(x, y AddressStatus) int {
		if c := strings.Compare(strings.Join(x.Services, ","), strings.Join(y.Services, ",")); c != 0 {
			return c
		}
		ax, _ := netip.ParseAddr(x.Address)
		ay, _ := netip.ParseAddr(y.Address)
		return ax.Compare(ay)
	})
	slices.SortFunc(rep.Pending, func(x, y PendingService) int { return strings.Compare(x.Service, y.Service) })
	slices.SortFunc(rep.Nodes, func(x, y NodeStatus) int { return strings.Compare(x.Node, y.Node) })
	return rep
}

// latestEvents returns the newest AllocationFailed Event of each Service.
func latestEvents(events []corev1.Event) map[string]corev1.Event {
	when := func(e corev1.Event) time.Time {
		switch {
		case !e.LastTimestamp.IsZero():
			return e.LastTimestamp.Time
		case !e.EventTime.IsZero():
			return e.EventTime.Time
		}
		return e.CreationTimestamp.Time
	}
	out := map[string]corev1.Event{}
	for _, e := range events {
		if e.Reason != eventAllocationFailed || e.InvolvedObject.Kind != "Service" {
			continue
		}
		key := e.InvolvedObject.Namespace + "/" + e.InvolvedObject.Name
		if prev, ok := out[key]; !ok || !when(e).Before(when(prev)) {
			out[key] = e
		}
	}
	return out
}

// poolHeld reports whether the pool called name has spec.hold.
func poolHeld(pools []heraldv1.IPPool, name string) bool {
	for i := range pools {
		if pools[i].Name == name {
			return pools[i].Spec.Hold
		}
	}
	return false
}

func containingPool(pools []heraldv1.IPPool, addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return ""
	}
	for _, p := range pools {
		for _, entry := range p.Spec.Addresses {
			if r, err := allocator.ParseRange(entry); err == nil && r.Contains(ip) {
				return p.Name
			}
		}
	}
	return ""
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func age(now time.Time, t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return duration.HumanDuration(now.Sub(t.Time)) + " (" + t.UTC().Format(time.RFC3339) + ")"
}

func renderStatusTable(w io.Writer, rep StatusReport, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "SERVICE\tADDRESS\tPOOL\tPROTOCOL\tNODES\tSINCE\tPROBLEMS")
	for _, a := range rep.Addresses {
		var nodes []string
		for _, an := range a.Announcers {
			n := an.Node
			if len(a.Protocols) > 1 {
				n += "(" + an.Protocol + ")"
			}
			if !slices.Contains(nodes, n) {
				nodes = append(nodes, n)
			}
		}
		if a.Held && len(nodes) == 0 {
			nodes = []string{"<held>"}
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dash(strings.Join(a.Services, ",")), a.Address, dash(a.Pool),
			dash(strings.Join(a.Protocols, ",")), dash(strings.Join(nodes, ",")), age(now, a.Since), dash(strings.Join(a.Problems, "; ")))
	}
	for _, p := range rep.Pending {
		_, _ = fmt.Fprintf(tw, "%s\t<pending>\t-\t-\t-\t-\t%s\n", p.Service, p.Reason)
	}
	if len(rep.Nodes) > 0 {
		_, _ = fmt.Fprintln(tw)
		_, _ = fmt.Fprintln(tw, "NODE\tALIVE\tHEALTHY\tMEMBERS\tLAYER2\tBGP\tBGP SESSIONS")
		for _, n := range rep.Nodes {
			var sess []string
			for _, s := range n.BGPSessions {
				st := "down"
				if s.Up {
					st = "up"
				}
				sess = append(sess, s.Peer+":"+st)
			}
			_, _ = fmt.Fprintf(tw, "%s\t%t\t%t\t%d\t%d\t%d\t%s\n", n.Node, n.Alive, n.Healthy, n.Members, n.Layer2, n.BGP, dash(strings.Join(sess, ",")))
		}
	}
	return tw.Flush()
}
