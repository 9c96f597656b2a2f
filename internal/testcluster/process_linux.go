package testcluster

import "syscall"

// sysProcAttr puts a child in its own process group, so Stop can kill it
// with everything it forked, and has the kernel kill it if the test binary
// dies first (a panic or `go test -timeout`), so no etcd outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
