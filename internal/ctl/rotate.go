package ctl

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/memberkey"
)

// rotateOptions are rotate-key's flags.
type rotateOptions struct {
	namespace, secret string
	keyFile           string        // the new key's base64; empty: a random 32-byte key
	timeout           time.Duration // for each step's wait
}

// rotatePoll is how often rotate-key reads the Speaker objects while it
// waits: speakers write theirs at most once a second.
const rotatePoll = time.Second

// rotateKey replaces the memberlist key in three writes of the Secret,
// each only once every live speaker reports the previous one applied in
// its Speaker status:
//
//  1. the new key is added after the current ones (the current primary
//     still encrypts);
//  2. the new key moves first: the speakers encrypt with it;
//  3. the new key alone stays.
//
// The speakers order their own keyrings safely whatever the Secret says
// (internal/membership), so the waits do not protect the cluster; they
// make each step's end visible, keep the Secret from running ahead of a
// speaker that is behind, and stop the rotation where a speaker does not
// follow, with its name.
func rotateKey(ctx context.Context, env Env, c *clients, clk clock.Clock, o rotateOptions) error {
	secrets := c.kube.CoreV1().Secrets(o.namespace)
	s, err := secrets.Get(ctx, o.secret, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading the memberlist key Secret: %w", err)
	}
	cur, err := memberkey.Parse(string(s.Data[memberkey.SecretKey]))
	if err != nil {
		return fmt.Errorf("reading the keys of Secret %s/%s: %w", o.namespace, o.secret, err)
	}
	newKey, err := readNewKey(o.keyFile)
	if err != nil {
		return err
	}
	newFP := memberkey.Fingerprint(newKey)
	if slices.Contains(memberkey.Fingerprints(cur), newFP) {
		return fmt.Errorf("the Secret already holds key %s; give another", newFP)
	}
	if len(cur)+1 > memberkey.MaxKeys {
		return fmt.Errorf("the Secret already lists %d keys (a rotation left unfinished?); remove all but the first before rotating", len(cur))
	}
	steps := []struct {
		what string
		keys [][]byte
	}{
		{"add key " + newFP + " (" + memberkey.Fingerprint(cur[0]) + " still encrypts)", append(slices.Clone(cur), newKey)},
		{"encrypt with key " + newFP, append([][]byte{newKey}, cur...)},
		{"remove the old keys", [][]byte{newKey}},
	}
	for i, st := range steps {
		s.Data[memberkey.SecretKey] = []byte(memberkey.Format(st.keys))
		if s, err = secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("step %d of 3 (%s): writing the Secret: %w", i+1, st.what, err)
		}
		_, _ = fmt.Fprintf(env.Out, "step %d/3: %s: Secret written; waiting for the speakers\n", i+1, st.what)
		start := clk.Now()
		n, err := waitSpeakers(ctx, c, clk, st.keys, o.timeout)
		if err != nil {
			return fmt.Errorf("step %d of 3 (%s): %w; the Secret stays as written", i+1, st.what, err)
		}
		_, _ = fmt.Fprintf(env.Out, "step %d/3: all %d speakers applied it (%v)\n", i+1, n, clk.Since(start).Round(100*time.Millisecond))
	}
	_, _ = fmt.Fprintf(env.Out, "memberlist key rotated: every speaker encrypts with %s only\n", newFP)
	return nil
}

func readNewKey(file string) ([]byte, error) {
	if file == "" {
		key := make([]byte, 32)
		if _, err := io.ReadFull(rand.Reader, key); err != nil {
			return nil, fmt.Errorf("generating a key: %w", err)
		}
		return key, nil
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading the new key: %w", err)
	}
	keys, err := memberkey.Parse(string(raw))
	if err != nil {
		return nil, fmt.Errorf("the new key in %s: %w", file, err)
	}
	if len(keys) != 1 {
		return nil, fmt.Errorf("%s holds %d keys; want one", file, len(keys))
	}
	return keys[0], nil
}

// waitSpeakers waits until every live speaker reports keys: the same key
// set, encrypting with the first. A live speaker is one that some
// speaker lists among its live memberlist members; a Speaker object of a
// node whose speaker is not running is not waited for (it reads the
// Secret when it starts). It returns how many speakers it waited for.
func waitSpeakers(ctx context.Context, c *clients, clk clock.Clock, keys [][]byte, timeout time.Duration) (int, error) {
	want := heraldv1.SpeakerStatus{MemberlistPrimaryKey: memberkey.Fingerprint(keys[0]), MemberlistKeys: memberkey.Fingerprints(keys)}
	slices.Sort(want.MemberlistKeys)
	deadline := clk.Now().Add(timeout)
	for {
		n, behind, err := speakersBehind(ctx, c, want)
		if err == nil && len(behind) == 0 {
			return n, nil
		}
		if !clk.Now().Before(deadline) {
			if err != nil {
				return 0, err
			}
			return 0, fmt.Errorf("after %v, %d of %d speakers do not report keys %v with %s first: %s",
				timeout, len(behind), n, want.MemberlistKeys, want.MemberlistPrimaryKey, strings.Join(behind, "; "))
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-clk.After(rotatePoll):
		}
	}
}

// speakersBehind lists the live speakers whose status does not show want,
// each with what it shows.
func speakersBehind(ctx context.Context, c *clients, want heraldv1.SpeakerStatus) (int, []string, error) {
	list, err := c.herald.HeraldV1alpha1().Speakers().List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, nil, fmt.Errorf("listing Speakers: %w", err)
	}
	live := map[string]bool{}
	for _, s := range list.Items {
		for _, m := range s.Status.LiveMembers {
			live[m] = true
		}
	}
	if len(live) == 0 {
		return 0, nil, errors.New("no speaker reports a live memberlist member")
	}
	byName := map[string]heraldv1.SpeakerStatus{}
	for _, s := range list.Items {
		byName[s.Name] = s.Status
	}
	var behind []string
	for _, name := range slices.Sorted(maps.Keys(live)) {
		st, ok := byName[name]
		switch {
		case !ok:
			behind = append(behind, name+" has no Speaker object")
		case st.MemberlistPrimaryKey != want.MemberlistPrimaryKey || !slices.Equal(st.MemberlistKeys, want.MemberlistKeys):
			behind = append(behind, fmt.Sprintf("%s has %v with %s first", name, st.MemberlistKeys, st.MemberlistPrimaryKey))
		}
	}
	return len(live), behind, nil
}
