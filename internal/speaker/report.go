package speaker

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/version"
)

// reportInterval bounds how often a node rewrites its Speaker object: a
// burst of changes (a failover moving a thousand addresses) costs one
// write, and the object always ends up showing the final state.
const reportInterval = time.Second

// maxReported is how many announcements a Speaker object lists (see
// SpeakerStatus.Announcements); above it the report interval grows in
// proportion, so a node announcing 10 000 addresses writes every 10 s at
// most while they change.
const maxReported = 1000

func (s *Speaker) pokeReport() {
	select {
	case s.reportPoke <- struct{}{}:
	default:
	}
}

// report builds this node's Speaker status from the last decision.
func (s *Speaker) report() heraldv1.SpeakerStatus {
	members := s.cfg.Membership.Members()
	st := heraldv1.SpeakerStatus{Members: int32(len(members)), Version: version.Get().Version}
	for _, m := range members {
		st.LiveMembers = append(st.LiveMembers, m.Name)
		if m.Name == s.cfg.NodeName {
			st.Healthy = m.Healthy
		}
	}
	slices.Sort(st.LiveMembers)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Sorted by address (then protocol) and cut to maxReported before any
	// entry is built: at 10 000 addresses most would be thrown away.
	type entry struct {
		addr        netip.Addr
		proto, pool string
		svcs, via   []string
	}
	entries := make([]entry, 0, len(s.last.L2)+len(s.last.BGP))
	for _, a := range s.last.L2 {
		entries = append(entries, entry{a.Addr, "layer2", a.Pool, a.Services, a.Interfaces})
	}
	for _, a := range s.last.BGP {
		entries = append(entries, entry{a.Addr, "bgp", a.Pool, a.Services, a.Policy.Peers})
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
			Since: metav1.NewTime(s.announced[e.proto+"/"+e.addr.String()].Truncate(time.Second)),
		})
	}
	st.Layer2Count, st.BGPCount = int32(len(s.last.L2)), int32(len(s.last.BGP))
	if s.cfg.BGP != nil {
		sessions := s.cfg.BGP.Sessions()
		for _, peer := range slices.Sorted(maps.Keys(sessions)) {
			st.BGPSessions = append(st.BGPSessions, heraldv1.BGPSession{Peer: peer, Up: sessions[peer]})
		}
	}
	return st
}

// runReports writes the Speaker object whenever the report changes, at
// most once per reportInterval, until ctx ends. Writes happen here and
// not in the decision loop, so an unreachable API server never delays an
// announcement.
func (s *Speaker) runReports(ctx context.Context) {
	var written *heraldv1.SpeakerStatus
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.reportPoke:
		}
		st := s.report()
		if written != nil && equality.Semantic.DeepEqual(*written, st) {
			continue
		}
		if err := s.writeReport(ctx, st); err != nil {
			if ctx.Err() == nil {
				s.log.Warn("writing Speaker status", "err", err)
				s.pokeReport() // try again after the interval
			}
		} else {
			written = &st
		}
		wait := reportInterval
		if n := int(st.Layer2Count + st.BGPCount); n > maxReported {
			wait = reportInterval * time.Duration(n) / maxReported
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (s *Speaker) writeReport(ctx context.Context, st heraldv1.SpeakerStatus) error {
	api := s.cfg.Herald.HeraldV1alpha1().Speakers()
	cur, err := api.Get(ctx, s.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cur, err = api.Create(ctx, &heraldv1.Speaker{ObjectMeta: metav1.ObjectMeta{Name: s.cfg.NodeName}}, metav1.CreateOptions{})
	}
	if err != nil {
		return err
	}
	cur.Status = st
	cur.Status.Updated = metav1.NewTime(time.Now().Truncate(time.Second))
	_, err = api.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
	return err
}
