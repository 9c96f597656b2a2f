package controller

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
)

func TestPeerSessions(t *testing.T) {
	sp := func(name string, live []string, sessions ...heraldv1.BGPSession) *heraldv1.Speaker {
		return &heraldv1.Speaker{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: heraldv1.SpeakerStatus{LiveMembers: live, BGPSessions: sessions}}
	}
	frrUp, frrDown, bird := heraldv1.BGPSession{Peer: "frr", Up: true}, heraldv1.BGPSession{Peer: "frr"}, heraldv1.BGPSession{Peer: "bird", Up: true}
	for _, tc := range []struct {
		name      string
		speakers  []*heraldv1.Speaker
		up, total int32
	}{
		{"all up", []*heraldv1.Speaker{sp("a", []string{"a", "b"}, frrUp, bird), sp("b", []string{"a", "b"}, frrUp)}, 2, 2},
		{"one down", []*heraldv1.Speaker{sp("a", []string{"a", "b"}, frrUp), sp("b", []string{"a", "b"}, frrDown)}, 1, 2},
		// c died without a last report: nobody else sees it, it does not count.
		{"stale report", []*heraldv1.Speaker{sp("a", []string{"a", "b"}, frrUp), sp("b", []string{"a", "b"}, frrUp), sp("c", []string{"a", "b", "c"}, frrUp)}, 2, 2},
		{"single node", []*heraldv1.Speaker{sp("a", []string{"a"}, frrUp)}, 1, 1},
		{"not selected", []*heraldv1.Speaker{sp("a", []string{"a"}, bird)}, 0, 0},
	} {
		up, total := peerSessions(tc.speakers, "frr")
		if up != tc.up || total != tc.total {
			t.Errorf("%s: %d/%d, want %d/%d", tc.name, up, total, tc.up, tc.total)
		}
	}
}
