package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/version"
)

// statusInterval bounds how often a node rewrites its Speaker object: a
// burst of changes (a failover moving a thousand addresses) costs one
// write, and the object always ends up showing the final state.
const statusInterval = time.Second

// maxReported is how many announcements a Speaker object lists (see
// SpeakerStatus.Announcements); above it the interval grows in
// proportion, so a node announcing 10 000 addresses writes every 10 s at
// most while they change.
const maxReported = 1000

func (r *Reporter) pokeStatus() { signal(r.statusPoke) }

// status builds this node's Speaker status from the last plan.
func (r *Reporter) status() heraldv1.SpeakerStatus {
	members := r.cfg.Members.Members()
	st := heraldv1.SpeakerStatus{Members: int32(len(members)), Version: version.Get().Version}
	for _, m := range members {
		st.LiveMembers = append(st.LiveMembers, m.Name)
		if m.Name == r.cfg.NodeName {
			st.Healthy = m.Healthy
			st.InterfacesDown = m.Interfaces.Down
			if m.Interfaces.Unlisted {
				st.InterfacesDown = []string{"*"}
			}
		}
	}
	slices.Sort(st.LiveMembers)
	if r.cfg.Keys != nil {
		k := r.cfg.Keys.Keyring()
		st.MemberlistKeys, st.MemberlistPrimaryKey = k.Keys, k.Primary
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Sorted by address (then protocol) and cut to maxReported before any
	// entry is built: at 10 000 addresses most would be thrown away.
	type entry struct {
		addr        netip.Addr
		proto, pool string
		svcs, via   []string
	}
	entries := make([]entry, 0, len(r.last.L2)+len(r.last.BGP))
	for _, a := range r.last.L2 {
		entries = append(entries, entry{a.Addr, "layer2", a.Pool, a.Services, a.Interfaces})
	}
	for _, a := range r.last.BGP {
		entries = append(entries, entry{a.Addr, "bgp", a.Pool, a.Services, a.Peers()})
	}
	slices.SortFunc(entries, func(x, y entry) int {
		if c := x.addr.Compare(y.addr); c != 0 {
			return c
		}
		return strings.Compare(x.proto, y.proto)
	})
	if n := len(entries); n > maxReported {
		st.AnnouncementsOmitted = int32(n - maxReported)
		entries = entries[:maxReported]
	}
	for _, e := range entries {
		st.Announcements = append(st.Announcements, heraldv1.Announcement{
			Address: e.addr.String(), Protocol: e.proto, Pool: e.pool, Services: e.svcs, Via: e.via,
			Since: metav1.NewTime(r.announced[e.proto+"/"+e.addr.String()].Truncate(time.Second)),
		})
	}
	st.Layer2Count, st.BGPCount = int32(len(r.last.L2)), int32(len(r.last.BGP))
	var reasons map[string]string
	if r.cfg.SessionReasons != nil {
		reasons = r.cfg.SessionReasons()
	}
	for _, p := range r.last.BGPPeers { // sorted by name
		s := heraldv1.BGPSession{Peer: p.Name, Up: r.sessions[p.Name]}
		if !s.Up {
			s.Reason = truncate(reasons[p.Name], 1024)
		}
		st.BGPSessions = append(st.BGPSessions, s)
	}
	return st
}

// Run writes the Speaker object whenever the status changes, at most once
// per statusInterval, until ctx ends. Writes happen here and not in the
// decision loop, so an unreachable API server never delays an
// announcement.
func (r *Reporter) Run(ctx context.Context) {
	var written *heraldv1.SpeakerStatus
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.statusPoke:
		}
		st := r.status()
		if written != nil && equality.Semantic.DeepEqual(*written, st) {
			continue
		}
		if err := r.write(ctx, st); err != nil {
			if ctx.Err() == nil {
				r.log.Warn("writing Speaker status", "err", err)
				r.pokeStatus() // try again after the interval
			}
		} else {
			written = &st
		}
		wait := statusInterval
		if n := int(st.Layer2Count + st.BGPCount); n > maxReported {
			wait = statusInterval * time.Duration(n) / maxReported
		}
		t := r.cfg.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// WriteFinal writes the status once more, after the last plan (the
// speaker's, announcing nothing) was applied.
func (r *Reporter) WriteFinal(ctx context.Context) error { return r.write(ctx, r.status()) }

func (r *Reporter) write(ctx context.Context, st heraldv1.SpeakerStatus) error {
	if r.cfg.Herald == nil {
		return nil
	}
	api := r.cfg.Herald.HeraldV1alpha1().Speakers()
	cur, err := api.Get(ctx, r.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cur, err = api.Create(ctx, r.newSpeaker(), metav1.CreateOptions{})
	}
	if err != nil {
		return fmt.Errorf("reading Speaker %s: %w", r.cfg.NodeName, err)
	}
	cur.Status = st
	cur.Status.Updated = metav1.NewTime(r.cfg.Clock.Now().Truncate(time.Second))
	if _, err := api.UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating the status of Speaker %s: %w", r.cfg.NodeName, err)
	}
	return nil
}

// newSpeaker is this node's Speaker object as first created: owned by the
// Node, so that deleting the Node deletes it. blockOwnerDeletion stays
// unset: setting it would need the right to update the Node's finalizers,
// and nothing has to wait for the Speaker before the Node goes.
func (r *Reporter) newSpeaker() *heraldv1.Speaker {
	sp := &heraldv1.Speaker{ObjectMeta: metav1.ObjectMeta{Name: r.cfg.NodeName}}
	if r.cfg.NodeUID != "" {
		sp.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: "v1", Kind: "Node", Name: r.cfg.NodeName, UID: r.cfg.NodeUID,
		}}
	}
	return sp
}

// truncate cuts s to at most n bytes, on a rune boundary, for a status
// field with a length limit.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
