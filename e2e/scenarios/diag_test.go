//go:build privileged

package scenarios

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// logsAround logs every line the lab's processes wrote within window of
// the first or the last of the given instants (sorted), so a lost request
// in a long scenario comes with what the speakers, kube-proxy and the
// backends were doing then, and a run of many failures prints its edges
// rather than the same lines over and over.
// herald logs JSON with a "time" key; the Kubernetes binaries log klog
// ("I1126 11:50:01.123456 ...") in the machine's local time zone.
func logsAround(t *testing.T, at []time.Time, window time.Duration) {
	t.Helper()
	if len(at) == 0 {
		return
	}
	at = []time.Time{at[0], at[len(at)-1]}
	files, _ := filepath.Glob(filepath.Join(theLab.StateDir, "logs", "*.log"))
	// With kubelet nodes, herald's own logs are the Pods' container logs.
	pods, _ := filepath.Glob(filepath.Join(theLab.StateDir, "nodes", "*", "pod-logs", "herald-system_*", "*", "*.log"))
	files = append(files, pods...)
	near := func(ts time.Time) bool {
		for _, a := range at {
			if d := ts.Sub(a); d > -window && d < window {
				return true
			}
		}
		return false
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if ts, ok := lineTime(line, at[0]); ok && near(ts) {
				t.Logf("  %s: %s", filepath.Base(f), line)
			}
		}
		_ = fh.Close() // read only: nothing to lose
	}
}

var klogTime = regexp.MustCompile(`^[IWEF](\d{4} \d{2}:\d{2}:\d{2}\.\d{6})`)

func lineTime(line string, ref time.Time) (time.Time, bool) {
	// Container logs (CRI format): "<RFC 3339 time> stderr F <line>".
	if stamp, rest, ok := strings.Cut(line, " "); ok && (strings.HasPrefix(rest, "stdout ") || strings.HasPrefix(rest, "stderr ")) {
		if ts, err := time.Parse(time.RFC3339Nano, stamp); err == nil {
			return ts, true
		}
	}
	if strings.HasPrefix(line, "{") {
		var rec struct {
			Time time.Time `json:"time"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && !rec.Time.IsZero() {
			return rec.Time, true
		}
		return time.Time{}, false
	}
	m := klogTime.FindStringSubmatch(line)
	if m == nil {
		return time.Time{}, false
	}
	ts, err := time.ParseInLocation("0102 15:04:05.000000", m[1], time.Local)
	if err != nil {
		return time.Time{}, false
	}
	return ts.AddDate(ref.Year(), 0, 0), true
}
