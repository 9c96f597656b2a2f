package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/heraldlb/herald/e2e/lab/lab"
)

// appendTable prints table and appends it to file (if set).
func appendTable(file, table string) error {
	fmt.Print(table)
	if file == "" {
		return nil
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(table + "\n"); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// benchLab brings up an l2 lab of its own (instance name distinct from the
// demo's, the tests' and bench-failover's) with IPPool "bench".
func benchLab(ctx context.Context, instance string, log *slog.Logger) (*lab.Lab, error) {
	l, err := lab.Up(ctx, lab.Options{Topology: "e2e/topologies/l2.clab.yml", Instance: instance, Log: log, Kubelet: lab.KubeletFromEnv()})
	if err != nil {
		return nil, err
	}
	if err := l.CreatePool(ctx, "bench", "198.51.100.200/29"); err != nil {
		_ = l.Down()
		return nil, err
	}
	return l, nil
}
