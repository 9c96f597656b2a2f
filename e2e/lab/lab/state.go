package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StateRoot is where labs keep their state, one directory per topology.
const StateRoot = "/run/herald-lab"

// StateDir is the state directory of the topology called name.
func StateDir(name string) string { return filepath.Join(StateRoot, name) }

// State is what a lab records so another process can use or remove it.
type State struct {
	Name          string   `json:"name"`
	Instance      string   `json:"instance,omitempty"`
	File          string   `json:"file"`
	SupervisorPID int      `json:"supervisorPID"`
	Namespaces    []string `json:"namespaces"`
	Processes     []Proc   `json:"processes"`
	Kubeconfig    string   `json:"kubeconfig,omitempty"`
	APIServer     string   `json:"apiServer,omitempty"`
	ClusterDir    string   `json:"clusterDir,omitempty"`
	// Kubelet says the nodes run containerd and a kubelet (Options.Kubelet).
	Kubelet bool `json:"kubelet,omitempty"`
	// KernelTunables are the host-wide sysctls the kubelet lab changed,
	// with the values to put back at teardown.
	KernelTunables map[string]string `json:"kernelTunables,omitempty"`
	Ready          bool              `json:"ready"`
	UpSeconds      float64           `json:"upSeconds,omitempty"`
	Started        time.Time         `json:"started"`
}

// Proc is one process the lab started.
type Proc struct {
	Node string `json:"node"`
	Name string `json:"name"`
	PID  int    `json:"pid"`
	// StartTime is field 22 of /proc/PID/stat: with the pid it names the
	// process even after the pid has been reused by another.
	StartTime uint64 `json:"startTime"`
	Log       string `json:"log,omitempty"`
}

func (s *State) save(dir string) error {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".state.json.tmp")
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		return fmt.Errorf("writing lab state: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, "state.json"))
}

// ErrNoLab is returned when a state directory holds no lab.
var ErrNoLab = errors.New("no lab state")

// LoadState reads the state of the lab in dir.
func LoadState(dir string) (*State, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", ErrNoLab, dir)
	}
	if err != nil {
		return nil, err
	}
	s := &State{}
	if err := json.Unmarshal(raw, s); err != nil {
		return nil, fmt.Errorf("reading %s/state.json: %w", dir, err)
	}
	return s, nil
}

// Alive reports whether p is still the process the lab started.
func (p Proc) Alive() bool {
	st, err := procStartTime(p.PID)
	return err == nil && st == p.StartTime
}

// Proc returns the recorded process name on node, if any.
func (s *State) Proc(node, name string) (Proc, bool) {
	for i := len(s.Processes) - 1; i >= 0; i-- {
		if p := s.Processes[i]; p.Node == node && p.Name == name {
			return p, true
		}
	}
	return Proc{}, false
}

func procStartTime(pid int) (uint64, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after its ")".
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parsing /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return 0, fmt.Errorf("parsing /proc/%d/stat", pid)
	}
	// fields[0] is field 3 (state); starttime is field 22.
	if fields[0] == "Z" {
		return 0, fmt.Errorf("process %d is a zombie", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// ProcStarted is when process pid started: its start time in clock ticks
// since boot (10 ms resolution) against the uptime now.
func ProcStarted(pid int) (time.Time, error) {
	ticks, err := procStartTime(pid)
	if err != nil {
		return time.Time{}, err
	}
	up, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return time.Time{}, err
	}
	now := time.Now()
	f := strings.Fields(string(up))
	if len(f) == 0 {
		return time.Time{}, errors.New("parsing /proc/uptime")
	}
	secs, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("parsing /proc/uptime: %w", err)
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	age := time.Duration(secs*float64(time.Second)) - time.Duration(ticks)*time.Second/ticksPerSecond
	return now.Add(-age), nil
}

// signal sends sig to p if it is still the recorded process.
func (p Proc) signal(sig syscall.Signal) error {
	if !p.Alive() {
		return nil
	}
	if err := syscall.Kill(p.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signalling %s on %s (pid %d): %w", p.Name, p.Node, p.PID, err)
	}
	return nil
}

// waitGone waits up to d for p to exit.
func (p Proc) waitGone(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !p.Alive() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return !p.Alive()
}
