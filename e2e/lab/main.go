// Command lab builds herald's network lab from a containerlab topology
// with network namespaces (no container engine), runs a real Kubernetes
// control plane, kube-proxy, herald and routers in it, and tears it down.
//
//	go run ./e2e/lab up [-d] e2e/topologies/l2.clab.yml   # -d: detach, return once ready
//	go run ./e2e/lab status l2
//	go run ./e2e/lab down l2
//	go run ./e2e/lab demo                                 # what `make demo` runs
//	go run ./e2e/lab bench-failover [-trials 20] [-out FILE]
//	go run ./e2e/lab bench-rolling [-rounds 3] [-vips 3] [-out FILE]   # appends to FILE
//	go run ./e2e/lab bench-etp-move [-trials 10] [-out FILE]           # appends to FILE
//
// Without -d, up stays in the foreground and tears the lab down on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/heraldlb/herald/e2e/lab/lab"
	"github.com/heraldlb/herald/e2e/lab/topology"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

const usage = `usage: lab up [-d] TOPOLOGY | down NAME|TOPOLOGY | status NAME|TOPOLOGY | demo | bench-failover [-trials N] [-out FILE] | bench-rolling [-rounds N] [-vips N] [-out FILE] | bench-etp-move [-trials N] [-out FILE]`

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, usage)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var err error
	switch args[0] {
	case "up":
		err = up(args[1:], log)
	case "down":
		err = down(args[1:], log)
	case "status":
		err = status(args[1:])
	case "demo":
		err = demo(args[1:], log)
	case "bench-failover":
		err = benchFailover(args[1:], log)
	case "bench-rolling":
		err = benchRolling(args[1:], log)
	case "bench-etp-move":
		err = benchETPMove(args[1:], log)
	default:
		fmt.Fprintln(os.Stderr, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		return 1
	}
	return 0
}

// stateDirFor accepts a topology name or a topology file.
func stateDirFor(arg string) (string, error) {
	if strings.HasSuffix(arg, ".yml") || strings.HasSuffix(arg, ".yaml") {
		t, err := topology.Load(arg)
		if err != nil {
			return "", err
		}
		return lab.StateDir(t.Name), nil
	}
	return lab.StateDir(arg), nil
}

func up(args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	detach := fs.Bool("d", false, "detach: run the lab in the background and return once it is ready")
	kubelet := fs.Bool("kubelet", false, "run containerd and a kubelet on every node (see lab.Options.Kubelet)")
	instance := fs.String("instance", "", "name the lab's namespaces and state dir after this instead of the topology")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("up needs one topology file")
	}
	file := fs.Arg(0)
	if *detach {
		return upDetached(file, *instance, *kubelet)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := lab.Up(ctx, lab.Options{Topology: file, Log: log, Instance: *instance, Kubelet: *kubelet})
	if err != nil {
		return err
	}
	printInfo(l)
	fmt.Println("lab is up; Ctrl-C (or `lab down`) tears it down")
	<-ctx.Done()
	log.Info("tearing down")
	return l.Down()
}

// upDetached re-runs `up` in a new session with its output in the state
// dir, and returns once the lab is ready (or the child failed).
func upDetached(file, instance string, kubelet bool) error {
	dir, err := stateDirFor(file)
	if err != nil {
		return err
	}
	if instance != "" {
		dir = lab.StateDir(instance)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(filepath.Dir(dir), filepath.Base(dir)+".runner.log")
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "up", "-instance="+instance, "-kubelet="+strconv.FormatBool(kubelet), file)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		if st, err := lab.LoadState(dir); err == nil && st.Ready && st.SupervisorPID == cmd.Process.Pid {
			l, err := lab.Attach(dir)
			if err != nil {
				return err
			}
			printInfo(l)
			fmt.Printf("runner log: %s\n", logPath)
			return nil
		}
		select {
		case err := <-exited:
			raw, _ := os.ReadFile(logPath)
			return fmt.Errorf("lab runner exited (%v):\n%s", err, tail(string(raw), 40))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func down(args []string, log *slog.Logger) error {
	if len(args) != 1 {
		return errors.New("down needs a topology name or file")
	}
	dir, err := stateDirFor(args[0])
	if err != nil {
		return err
	}
	if _, err := lab.LoadState(dir); errors.Is(err, lab.ErrNoLab) {
		fmt.Printf("no lab in %s\n", dir)
		return nil
	}
	return lab.DownDir(dir, log)
}

func status(args []string) error {
	if len(args) != 1 {
		return errors.New("status needs a topology name or file")
	}
	dir, err := stateDirFor(args[0])
	if err != nil {
		return err
	}
	st, err := lab.LoadState(dir)
	if err != nil {
		return err
	}
	fmt.Printf("lab %s (%s): ready=%v, up in %.1fs, supervisor pid %d\n", st.Name, st.File, st.Ready, st.UpSeconds, st.SupervisorPID)
	fmt.Printf("api server %s, kubeconfig %s\n", st.APIServer, st.Kubeconfig)
	fmt.Printf("namespaces: %s\n", strings.Join(st.Namespaces, " "))
	for _, p := range st.Processes {
		state := "running"
		if !p.Alive() {
			state = "GONE"
		}
		fmt.Printf("  %-8s %-24s pid %-7d %s\n", p.Node, p.Name, p.PID, state)
	}
	return nil
}

func printInfo(l *lab.Lab) {
	st := l.State()
	cp := l.Topo.ByRole(topology.RoleControlPlane)[0]
	fmt.Printf("lab %s up in %.1fs; state in %s\n", st.Name, st.UpSeconds, l.StateDir)
	fmt.Printf("  kubectl:   ip netns exec %s %s --kubeconfig %s get nodes,svc,pods -A -o wide\n", cp.Namespace, l.KubectlPath(), l.Kubeconfig)
	for _, n := range l.Topo.Nodes {
		if n.Kind == "bridge" {
			continue
		}
		fmt.Printf("  %-8s ip netns exec %s bash   (%s; %s)\n", n.Name, n.Namespace, n.Role, joinAddrs(n))
	}
	fmt.Printf("  logs:      %s/logs/\n", l.StateDir)
}

func joinAddrs(n *topology.Node) string {
	var s []string
	for _, a := range n.Addresses() {
		s = append(s, a.String())
	}
	return strings.Join(s, ", ")
}
