// Command pause is the lab's Pod sandbox image: it holds the Pod's
// namespaces open as their first process, reaps the orphans that land on
// it as PID 1, and exits on SIGINT or SIGTERM. The lab builds it into a
// local image because no registry (and so no registry.k8s.io/pause) can
// be reached from the lab.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		// Several children may have exited for one SIGCHLD.
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
