//go:build privileged

package scenarios

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab/lab"
)

// theLab is shared by every scenario: bring-up costs ~10 s, and each
// scenario uses its own Services, pool and backend app label.
var theLab *lab.Lab

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		// Built with the privileged tag means "run them": never pass quietly.
		fmt.Fprintln(os.Stderr, "*** FAIL: lab scenarios need root (network namespaces); run `make e2e` as root ***")
		os.Exit(1)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	flag.Parse()
	if !runsL2Scenarios() {
		// -run selects only the BGP scenarios: they bring up their own lab.
		code := m.Run()
		return downBGPLab(code)
	}
	stateDir, err := os.MkdirTemp("", "herald-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	start := time.Now()
	l, err := lab.Up(ctx, lab.Options{
		Topology: filepath.Join("..", "topologies", "l2.clab.yml"),
		Instance: "e2e", StateDir: stateDir, Log: log, Kubelet: lab.KubeletFromEnv(),
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "*** FAIL: bringing up the lab: %v ***\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "lab up in %v (state %s)\n", time.Since(start).Round(time.Millisecond), stateDir)
	theLab = l
	code := m.Run()
	code = downBGPLab(code)
	if code != 0 {
		fmt.Fprintf(os.Stderr, "scenario failed; process logs were in %s/logs (removed with the lab)\n", stateDir)
		dumpLogs(stateDir)
	}
	if err := l.Down(); err != nil {
		fmt.Fprintf(os.Stderr, "tearing down the lab: %v\n", err)
		return 1
	}
	return code
}

// runsL2Scenarios says whether -run selects a scenario of the shared l2
// lab: a test function of this package outside the bgp*_test.go,
// controlplane*_test.go and migrate*_test.go files (those build labs of
// their own).
func runsL2Scenarios() bool {
	pattern := flag.Lookup("test.run").Value.String()
	if pattern == "" {
		return true
	}
	re, err := regexp.Compile(strings.SplitN(pattern, "/", 2)[0])
	if err != nil {
		return true
	}
	files, _ := filepath.Glob("*_test.go")
	testFunc := regexp.MustCompile(`(?m)^func (Test\w+)\(t \*testing\.T\)`)
	for _, f := range files {
		if strings.HasPrefix(f, "bgp") || strings.HasPrefix(f, "controlplane") || strings.HasPrefix(f, "migrate") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			return true
		}
		for _, m := range testFunc.FindAllStringSubmatch(string(raw), -1) {
			if re.MatchString(m[1]) {
				return true
			}
		}
	}
	return false
}

// dumpLogs prints the tails of the lab processes' logs for a failed run.
func dumpLogs(dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	// A kubelet lab's Pods log into their node's Pod log directory.
	pods, _ := filepath.Glob(filepath.Join(dir, "nodes", "*", "pod-logs", "*", "*", "*.log"))
	files = append(files, pods...)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if len(raw) > 3000 {
			raw = raw[len(raw)-3000:]
		}
		rel, _ := filepath.Rel(dir, f)
		fmt.Fprintf(os.Stderr, "--- %s (tail)\n%s\n", rel, raw)
	}
}
