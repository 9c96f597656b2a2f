package lab

import (
	"os"
	"testing"

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
