package lab

import (
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	st, err := procStartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want := &State{Name: "l2", Instance: "e2e", SupervisorPID: os.Getpid(), Namespaces: []string{"hl-lab-e2e-sw"},
		Processes: []Proc{{Node: "node1", Name: "herald-speaker", PID: os.Getpid(), StartTime: st}}}
	if err := want.save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
	if !got.Processes[0].Alive() {
		t.Error("this process is recorded but not Alive")
	}
	// A reused pid has another start time: never signal it.
	other := got.Processes[0]
	other.StartTime++
	if other.Alive() {
		t.Error("a process with another start time counts as the recorded one")
	}
	if _, err := LoadState(t.TempDir()); err == nil {
		t.Error("LoadState of an empty dir: no error")
	}
}

// TestProcStarted: this test process started before now and not before
// the test binary was built.
func TestProcStarted(t *testing.T) {
	started, err := ProcStarted(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Stat("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if now := time.Now(); started.After(now) || started.Before(exe.ModTime().Add(-time.Second)) {
		t.Errorf("started %v; want between the binary's build %v and now %v", started, exe.ModTime(), now)
	}
}
