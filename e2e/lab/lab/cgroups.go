package lab

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupFS is where the machine mounts its cgroup hierarchies.
const cgroupFS = "/sys/fs/cgroup"

// labCgroup is the cgroup (the same path in every hierarchy) under which
// the kubelet lab instance keeps its nodes: node N's kubelet gets
// labCgroup/N as its --cgroup-root, and the node's own processes
// (containerd, its shims, kubelet) sit in labCgroup/N/runtime, so that
// every process of a node, Pods included, can be found and killed from
// the cgroup tree alone. It starts with the lab's namespace prefix: the
// machine's other cgroups are never touched.
func labCgroup(instance string) string { return "/hl-lab-" + instance }

// cgroupHierarchies lists the mounted cgroup v1 hierarchies (one
// directory per controller, the named "systemd" one included) or, on a
// unified (v2) machine, the one root.
func cgroupHierarchies() ([]string, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(cgroupFS, &st); err != nil {
		return nil, fmt.Errorf("reading %s: %w", cgroupFS, err)
	}
	const cgroup2Magic = 0x63677270
	if st.Type == cgroup2Magic {
		return []string{cgroupFS}, nil
	}
	entries, err := os.ReadDir(cgroupFS)
	if err != nil {
		return nil, fmt.Errorf("listing cgroup hierarchies: %w", err)
	}
	var out []string
	for _, e := range entries {
		dir := filepath.Join(cgroupFS, e.Name())
		// The empty v2 hierarchy of a hybrid machine holds no
		// controllers; kubelet and runc do not use it either.
		if !e.IsDir() || e.Name() == "unified" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err == nil {
			out = append(out, dir)
		}
	}
	return out, nil
}

// makeCgroup creates path (e.g. /hl-lab-x/node1) in every hierarchy. A
// new v1 cpuset cgroup has no CPUs or memory nodes; they are copied from
// its parent, or no process could join it.
func makeCgroup(path string) error {
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		dir := h
		for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
			parent := dir
			dir = filepath.Join(dir, part)
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("creating cgroup %s: %w", dir, err)
			}
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				cur, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil || strings.TrimSpace(string(cur)) != "" {
					continue
				}
				v, err := os.ReadFile(filepath.Join(parent, f))
				if err != nil {
					return fmt.Errorf("reading %s of %s: %w", f, parent, err)
				}
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return fmt.Errorf("setting %s of %s: %w", f, dir, err)
				}
			}
		}
	}
	return nil
}

// cgroupProcsFile is the file a process writes its pid into to join path
// in the pids hierarchy (or the unified one), the hierarchy the lab
// finds a node's processes through.
func cgroupProcsFile(path string) (string, error) {
	hs, err := cgroupHierarchies()
	if err != nil {
		return "", err
	}
	for _, h := range hs {
		if h == cgroupFS || filepath.Base(h) == "pids" {
			return filepath.Join(h, path, "cgroup.procs"), nil
		}
	}
	return "", errors.New("no pids cgroup hierarchy mounted")
}

// cgroupPIDs returns every process in path and below it.
func cgroupPIDs(path string) []int {
	procs, err := cgroupProcsFile(path)
	if err != nil {
		return nil
	}
	var pids []int
	_ = filepath.WalkDir(filepath.Dir(procs), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(raw)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// killCgroup SIGKILLs every process in path and below, again and again
// until none is left (a process may fork between two reads), for up to
// 10 s.
func killCgroup(path string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := cgroupPIDs(path)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still in cgroup %s after 10 s of SIGKILL", pids, path)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// removeCgroup kills what is left in path and removes it, deepest
// directories first, from every hierarchy. A missing path is no error.
func removeCgroup(path string) error {
	if !strings.HasPrefix(path, "/hl-") {
		return fmt.Errorf("refusing to remove cgroup %s: not the lab's", path)
	}
	if err := killCgroup(path); err != nil {
		return err
	}
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hs {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(h, path), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.Reverse(dirs)
		for _, d := range dirs {
			// A cgroup whose last process just died may stay busy for a
			// moment.
			var err error
			for range 50 {
				if err = os.Remove(d); err == nil || errors.Is(err, fs.ErrNotExist) {
					err = nil
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}
