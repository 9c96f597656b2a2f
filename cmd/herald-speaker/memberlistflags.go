package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/heraldlb/herald/internal/membership"
)

// memberlistFlags are the memberlist flags of both modes (the Service
// speaker and the control-plane one).
type memberlistFlags struct {
	port           int
	keyFile        string
	insecure       bool
	probeInterval  time.Duration
	probeTimeout   time.Duration
	suspicionMult  int
	gossipInterval time.Duration
}

// register adds the flags to fs: the port flag with port as its default
// and portHelp, the key file flag with keyHelp. The timing defaults target
// sub-second failover; their reasons are documented in internal/membership.
func (m *memberlistFlags) register(fs *flag.FlagSet, port int, portHelp, keyHelp string) {
	pi, pt, sm, gi := membership.DefaultTiming()
	fs.IntVar(&m.port, "memberlist-port", port, portHelp)
	fs.StringVar(&m.keyFile, "memberlist-key-file", "", keyHelp)
	fs.BoolVar(&m.insecure, "memberlist-insecure", false, "labs only: memberlist traffic unencrypted and unauthenticated")
	fs.DurationVar(&m.probeInterval, "memberlist-probe-interval", pi, "how often each speaker probes another (failure detection scales with it)")
	fs.DurationVar(&m.probeTimeout, "memberlist-probe-timeout", pt, "how long a direct probe waits before indirect probes")
	fs.IntVar(&m.suspicionMult, "memberlist-suspicion-mult", sm, "suspicion timeout in probe intervals before a suspect member is declared dead")
	fs.DurationVar(&m.gossipInterval, "memberlist-gossip-interval", gi, "how often membership changes are gossiped")
}

// validate checks the flags' values.
func (m *memberlistFlags) validate() error {
	switch {
	case m.keyFile == "" && !m.insecure:
		return errors.New("--memberlist-key-file is required (or --memberlist-insecure, for labs only)")
	case m.keyFile != "" && m.insecure:
		return errors.New("--memberlist-key-file and --memberlist-insecure exclude each other")
	case m.port < 1 || m.port > 65535:
		return fmt.Errorf("--memberlist-port %d is not a port", m.port)
	case m.probeInterval <= 0 || m.probeTimeout <= 0 || m.gossipInterval <= 0:
		return errors.New("memberlist intervals must be positive")
	case m.probeTimeout >= m.probeInterval:
		return errors.New("--memberlist-probe-timeout must be shorter than --memberlist-probe-interval")
	case m.suspicionMult < 1:
		return errors.New("--memberlist-suspicion-mult must be at least 1")
	}
	return nil
}

// keys reads the key file; none with --memberlist-insecure.
func (m *memberlistFlags) keys() ([][]byte, error) {
	if m.insecure {
		return nil, nil
	}
	return readKeys(m.keyFile)
}

// config is membership's configuration for node at bind.
func (m *memberlistFlags) config(node string, bind netip.Addr, keys [][]byte, log *slog.Logger) membership.Config {
	return membership.Config{
		NodeName: node, BindAddr: bind, Port: m.port, Keys: keys,
		ProbeInterval: m.probeInterval, ProbeTimeout: m.probeTimeout,
		SuspicionMult: m.suspicionMult, GossipInterval: m.gossipInterval,
		Log: log.With("source", "memberlist"),
	}
}
