// Command heraldctl shows what herald does (status, pools) and converts
// MetalLB configuration (import-metallb). Installed or symlinked as
// kubectl-herald on $PATH, it also runs as the plugin "kubectl herald".
package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/heraldlb/herald/internal/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ctl.Main(ctx, ctl.Env{
		Name: filepath.Base(os.Args[0]),
		In:   os.Stdin, Out: os.Stdout, Err: os.Stderr,
	}, os.Args[1:])
	stop()
	os.Exit(code)
}
