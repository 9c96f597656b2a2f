//go:build privileged

package scenarios

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/e2e/lab/lab"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
	"github.com/heraldlb/herald/internal/ctl"
	"github.com/heraldlb/herald/internal/k8s"
)

// announcers maps each "address protocol" announced in the lab to the node
// announcing it and since when, from the Speaker objects: an address that
// moved away and back would show a new since.
func announcers(t *testing.T, herald versioned.Interface) map[string]string {
	t.Helper()
	list, err := herald.HeraldV1alpha1().Speakers().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range list.Items {
		for _, a := range s.Status.Announcements {
			out[a.Address+" "+a.Protocol] = s.Name + " since " + a.Since.UTC().Format(time.RFC3339)
		}
	}
	return out
}

// TestKeyRotationWithoutLoss rotates the memberlist key with `heraldctl
// rotate-key` while a client requests three layer-2 addresses every 50 ms:
// no request may go unanswered, no address may change owner, and every
// speaker ends up encrypting with the new key only.
func TestKeyRotationWithoutLoss(t *testing.T) {
	l := theLab
	if _, ok := l.Proc(l.Nodes()[0], "kubelet"); !ok {
		t.Skip("the lab runs no kubelet (HERALD_LAB_MODE=process): its speakers run without encryption")
	}
	// A pool of its own, deleted afterwards: the scenarios after this one
	// create pools in other ranges and must find them free.
	pool(t, keysPool, false, "198.51.100.232/29")
	backends(t, "keys", l.Nodes()...)
	var vips []netip.Addr
	for _, name := range []string{"keys1", "keys2", "keys3"} {
		svc := lab.NewLBService(name, "keys", 80)
		svc.Annotations[k8s.AnnotationPool] = keysPool
		apply(t, svc)
		if err := l.WaitEndpoints(ctxFor(t, 30*time.Second), "default", name, len(l.Nodes())); err != nil {
			t.Fatal(err)
		}
		vips = append(vips, ingress(t, name))
	}
	for _, v := range vips {
		settle(t, v)
	}
	herald := versioned.NewForConfigOrDie(l.Config)
	time.Sleep(2 * time.Second) // the speakers' reports follow within a second
	before := announcers(t, herald)

	pctx, stop := context.WithCancel(context.Background())
	results := make(chan []lab.Probe, len(vips))
	for _, v := range vips {
		go func() { results <- l.ProbeEvery(pctx, l.Client(), v, 80, 50*time.Millisecond, time.Second) }()
	}
	time.Sleep(300 * time.Millisecond)
	var out, errOut bytes.Buffer
	start := time.Now()
	code := ctl.Main(context.Background(), ctl.Env{Out: &out, Err: &errOut, Config: l.Config}, []string{"rotate-key", "--timeout", "1m"})
	took := time.Since(start)
	time.Sleep(time.Second)
	stop()
	t.Logf("heraldctl rotate-key (%v):\n%s%s", took.Round(time.Millisecond), out.String(), errOut.String())
	if code != 0 {
		t.Fatalf("heraldctl rotate-key: exit %d", code)
	}

	unanswered, total := 0, 0
	var failedAt []time.Time
	for range vips {
		for _, p := range <-results {
			total++
			if p.Err != nil {
				unanswered++
				failedAt = append(failedAt, p.Sent)
				t.Logf("unanswered probe sent %s: %v", p.Sent.Format("15:04:05.000"), p.Err)
			}
		}
	}
	time.Sleep(time.Second)
	after := announcers(t, herald)
	var moved []string
	for _, a := range slices.Sorted(maps.Keys(before)) {
		if before[a] != after[a] {
			moved = append(moved, fmt.Sprintf("%s: %s -> %s", a, before[a], after[a]))
		}
	}
	list, err := herald.HeraldV1alpha1().Speakers().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, s := range list.Items {
		keys = append(keys, s.Name+" "+s.Status.MemberlistPrimaryKey+" "+strings.Join(s.Status.MemberlistKeys, ","))
	}
	t.Logf("KEY ROTATION (heraldctl rotate-key, %v): %d of %d requests at 50 ms to %d addresses unanswered, %d of %d announcements changed owner; speakers now: %v",
		took.Round(time.Millisecond), unanswered, total, len(vips), len(moved), len(before), keys)
	if unanswered > 0 {
		logsAround(t, failedAt, 2*time.Second)
		t.Errorf("%d requests unanswered during the key rotation; want 0", unanswered)
	}
	if len(moved) > 0 || len(before) < len(vips) {
		t.Errorf("announcements before %v, after %v; changed: %v", before, after, moved)
	}
	for _, s := range list.Items {
		if s.Status.MemberlistPrimaryKey != list.Items[0].Status.MemberlistPrimaryKey {
			t.Errorf("speakers %s and %s encrypt with different keys", s.Name, list.Items[0].Name)
		}
		if len(s.Status.MemberlistKeys) != 1 || s.Status.MemberlistKeys[0] != s.Status.MemberlistPrimaryKey || s.Status.MemberlistPrimaryKey == "" {
			t.Errorf("speaker %s ends with keys %v, primary %q; want one, the new one", s.Name, s.Status.MemberlistKeys, s.Status.MemberlistPrimaryKey)
		}
	}
}
