// Command backend is the lab's stand-in for a host-network Pod: an HTTP
// server answering every request with "NODE SOURCE\n", the node it runs on
// and the client address it saw, so scenarios can tell which node served
// them and whether the source address survived.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	name := flag.String("name", "", "the node name to report")
	listen := flag.String("listen", ":8080", "comma-separated listen addresses")
	flag.Parse()
	if *name == "" {
		fmt.Fprintln(os.Stderr, "backend: --name is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		_, _ = fmt.Fprintf(w, "%s %s\n", *name, host) // a client gone away is not the server's problem
	})
	errc := make(chan error, 8)
	var servers []*http.Server
	for _, addr := range strings.Split(*listen, ",") {
		srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, srv)
		go func() { errc <- srv.ListenAndServe() }()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "backend:", err)
			os.Exit(1)
		}
	}
	for _, s := range servers {
		_ = s.Close()
	}
}
