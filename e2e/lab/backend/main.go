// Command backend is the lab's backend: an HTTP server answering every
// request with "NODE SOURCE\n" (or "NODE SOURCE POD\n" when it knows its
// Pod), the node it runs on, the client address it saw and its Pod's
// name, so scenarios can tell which node and Pod served them and whether
// the source address survived. In a kubelet lab it runs as a Pod of the
// lab's backend image and learns its node and Pod names from the
// downward API ($NODE_NAME, $POD_NAME); elsewhere it is a host-network
// process told its node with --name.
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
	name := flag.String("name", os.Getenv("NODE_NAME"), "the node name to report (default $NODE_NAME)")
	pod := flag.String("pod", os.Getenv("POD_NAME"), "the Pod name to report, if any (default $POD_NAME)")
	listen := flag.String("listen", ":8080", "comma-separated listen addresses")
	flag.Parse()
	if *name == "" {
		fmt.Fprintln(os.Stderr, "backend: --name (or $NODE_NAME) is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	suffix := "\n"
	if *pod != "" {
		suffix = " " + *pod + "\n"
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		_, _ = fmt.Fprintf(w, "%s %s%s", *name, host, suffix) // a client gone away is not the server's problem
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
