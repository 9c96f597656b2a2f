package controller

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
)

// syncPeer sums the nodes' sessions with one BGPPeer into its status.
func (c *Controller) syncPeer(ctx context.Context, name string) error {
	p, err := c.peers.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	speakers, _ := c.speakers.List(labels.Everything())
	up, total := peerSessions(speakers, name)
	if p.Status.SessionsUp == up && p.Status.SessionsTotal == total {
		return nil
	}
	cp := p.DeepCopy()
	cp.Status.SessionsUp, cp.Status.SessionsTotal = up, total
	if _, err := c.cfg.Herald.HeraldV1alpha1().BGPPeers().UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("writing status of BGPPeer %s: %w", name, err)
	}
	return nil
}

// peerSessions counts the live speakers that have a session with peer and
// how many of those are up. A speaker that stopped without a last report
// leaves a stale object behind; it counts only while another speaker still
// sees it alive (or it is the only one).
func peerSessions(speakers []*heraldv1.Speaker, peer string) (up, total int32) {
	seenBy := map[string]bool{}
	for _, s := range speakers {
		for _, m := range s.Status.LiveMembers {
			if m != s.Name {
				seenBy[m] = true
			}
		}
	}
	for _, s := range speakers {
		if len(speakers) > 1 && !seenBy[s.Name] {
			continue
		}
		for _, sess := range s.Status.BGPSessions {
			if sess.Peer != peer {
				continue
			}
			total++
			if sess.Up {
				up++
			}
		}
	}
	return up, total
}
