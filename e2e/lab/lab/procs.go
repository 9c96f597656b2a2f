package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/heraldlb/herald/e2e/lab/netns"
)

// start runs argv in node's namespace as a lab process: its output goes
// to logs/<node>-<name>.log, it is recorded in the state, and the kernel
// kills it if the lab's process dies.
func (l *Lab) start(node, name string, argv ...string) (Proc, error) {
	return l.startCmd(node, name, netns.Command(context.Background(), l.Node(node).Namespace, argv...))
}

// StartProcess runs argv in node's namespace as a lab process, with env
// added to its environment: another system run beside herald (MetalLB in
// the migration lab). Like the lab's own processes, it logs to
// logs/<node>-<name>.log, is stopped by Down and dies with the lab's
// process.
func (l *Lab) StartProcess(node, name string, env []string, argv ...string) (Proc, error) {
	cmd := netns.Command(context.Background(), l.Node(node).Namespace, argv...)
	cmd.Env = append(os.Environ(), env...)
	return l.startCmd(node, name, cmd)
}

// startCmd is start for a command that enters node's namespace itself.
func (l *Lab) startCmd(node, name string, cmd *exec.Cmd) (Proc, error) {
	if !l.owned {
		return Proc{}, fmt.Errorf("starting %s on %s: only the process that brought the lab up can start processes", name, node)
	}
	logPath := filepath.Join(l.StateDir, "logs", node+"-"+name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Proc{}, err
	}
	defer func() { _ = f.Close() }()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return Proc{}, fmt.Errorf("starting %s on %s: %w", name, node, err)
	}
	st, err := procStartTime(cmd.Process.Pid)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return Proc{}, fmt.Errorf("starting %s on %s: %w", name, node, err)
	}
	p := Proc{Node: node, Name: name, PID: cmd.Process.Pid, StartTime: st, Log: logPath}
	done := make(chan struct{})
	l.mu.Lock()
	l.cmds[p.PID] = cmd
	l.done[p.PID] = done
	l.state.Processes = append(l.state.Processes, p)
	l.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	return p, l.saveState()
}

// Proc returns the last process called name started on node.
//
// In a kubelet lab, herald-speaker is the speaker container's process on
// node, found in the node's Pod cgroups.
func (l *Lab) Proc(node, name string) (Proc, bool) {
	if name == "herald-speaker" && l.kubelet() {
		return l.podProc(node, name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state.Proc(node, name)
}

// Kill sends sig to the process called name on node, by its recorded pid,
// and (for SIGKILL) waits until it is gone.
func (l *Lab) Kill(node, name string, sig syscall.Signal) error {
	p, ok := l.Proc(node, name)
	if !ok {
		return fmt.Errorf("no process %s on %s", name, node)
	}
	if err := p.signal(sig); err != nil {
		return err
	}
	if sig == syscall.SIGKILL && !p.waitGone(5*time.Second) {
		return fmt.Errorf("%s on %s (pid %d) still alive after SIGKILL", name, node, p.PID)
	}
	return nil
}
