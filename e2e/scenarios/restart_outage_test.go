//go:build privileged

package scenarios

import (
	"context"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/heraldlb/herald/e2e/lab/lab"
	"github.com/heraldlb/herald/internal/speaker"
)

// TestSpeakerRestartDuringAPIOutage (docs/traffic-policy.md#when-the-api-server-is-down-at-start):
// the speaker of the node that answers for an address is killed while the
// API server is down. The others take the address over; the new speaker
// cannot read anything from the API, starts from the snapshot its
// predecessor saved on the node, joins the others and answers for the
// address again. Measured: from the new speaker process's start to its
// first ARP answer.
func TestSpeakerRestartDuringAPIOutage(t *testing.T) {
	l := theLab
	ctx := ctxFor(t, 5*time.Minute)
	vip := service(t, "snapshot", false, false, l.Nodes()...)[0]
	reach(t, vip)
	n := owner(t, vip)
	mac, err := l.MAC(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	// The owner's snapshot must hold the Service before the outage.
	path := filepath.Join(l.SpeakerCacheDir(), "speaker-"+n+".json.gz")
	if err := pollUntil(60*time.Second, func() bool {
		snap, err := speaker.ReadSnapshot(path)
		return err == nil && slices.ContainsFunc(snap.Services, func(s corev1.Service) bool { return s.Name == "snapshot" })
	}); err != nil {
		t.Fatalf("%s's speaker saved no snapshot holding Service snapshot in %s within 60 s", n, path)
	}
	w, err := l.WatchARP(l.Client(), vip, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	if err := l.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = l.StartAPIServer(context.Background())
		}
	})
	old, ok := l.Proc(n, "herald-speaker")
	if !ok {
		t.Fatalf("no speaker process on %s", n)
	}
	if err := l.Kill(n, "herald-speaker", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if !lab.KubeletFromEnv() {
		if err := l.StartSpeaker(n); err != nil {
			t.Fatal(err)
		}
	}
	// The kubelet restarts the container without the API server.
	var started time.Time
	if err := pollUntil(90*time.Second, func() bool {
		p, ok := l.Proc(n, "herald-speaker")
		if !ok || (p.PID == old.PID && p.StartTime == old.StartTime) {
			return false
		}
		var err error
		started, err = lab.ProcStarted(p.PID)
		return err == nil
	}); err != nil {
		t.Fatalf("no new speaker on %s 90 s after the kill", n)
	}
	var answered time.Time
	if err := pollUntil(30*time.Second, func() bool {
		answered, ok = w.FirstFrom(mac, started)
		return ok
	}); err != nil {
		t.Fatalf("%s's new speaker has not answered ARP for %s 30 s after it started, with the API server down", n, vip)
	}
	// Meanwhile another node answered, and the node answers alone now.
	others := map[string]bool{}
	for _, s := range w.Seen() {
		if s.At.After(killed) && s.At.Before(answered) && s.MAC != mac {
			others[s.MAC] = true
		}
	}
	t.Logf("API server down; %s's speaker killed; %d other MAC(s) answered meanwhile; the new speaker started %v after the kill and answered ARP for %s %v after it started",
		n, len(others), started.Sub(killed).Round(time.Millisecond), vip, answered.Sub(started).Round(time.Millisecond))
	// The node that stood in stops within a gossip round.
	var macs []string
	if err := pollUntil(10*time.Second, func() bool {
		macs, _ = l.ARPReplies(ctx, l.Client(), vip, 2)
		return len(macs) > 0 && !slices.ContainsFunc(macs, func(m string) bool { return m != mac })
	}); err != nil {
		t.Errorf("%s is not answered by %s alone after its speaker came back: %v", vip, n, macs)
	}
	reach(t, vip)

	if err := l.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	restarted = true
	reach(t, vip)
	if got := owner(t, vip); got != n {
		t.Errorf("after the API server returned, %s is answered by %s; want %s", vip, got, n)
	}
}
