package privilege

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Cap is a Linux capability number (unix.CAP_*).
type Cap uint

// Set is a set of capabilities as the kernel encodes them: bit n is Cap n.
type Set uint64

// Of returns the set holding caps.
func Of(caps ...Cap) Set {
	var s Set
	for _, c := range caps {
		s |= 1 << c
	}
	return s
}

// Has reports whether every capability of o is in s.
func (s Set) Has(o Set) bool { return s&o == o }

var names = map[Cap]string{
	unix.CAP_CHOWN: "CHOWN", unix.CAP_DAC_OVERRIDE: "DAC_OVERRIDE", unix.CAP_SETGID: "SETGID",
	unix.CAP_SETUID: "SETUID", unix.CAP_SETPCAP: "SETPCAP", unix.CAP_NET_BIND_SERVICE: "NET_BIND_SERVICE",
	unix.CAP_NET_ADMIN: "NET_ADMIN", unix.CAP_NET_RAW: "NET_RAW", unix.CAP_SYS_ADMIN: "SYS_ADMIN",
}

// String lists the set's capabilities by name, as Kubernetes spells them.
func (s Set) String() string {
	var out []string
	for c := Cap(0); c < 64; c++ {
		if s&(1<<c) == 0 {
			continue
		}
		if n, ok := names[c]; ok {
			out = append(out, n)
		} else {
			out = append(out, "CAP_"+strconv.Itoa(int(c)))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}

// State is what /proc/self/status says about this process's privileges.
type State struct {
	UID, GID                       int
	Effective, Permitted, Bounding Set
	NoNewPrivs                     bool
}

// Current reads this process's privileges.
func Current() (State, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return State{}, err
	}
	defer func() { _ = f.Close() }()
	return parseStatus(bufio.NewScanner(f))
}

func parseStatus(sc *bufio.Scanner) (State, error) {
	var st State
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) == 0 {
			continue
		}
		var err error
		switch key {
		case "Uid":
			st.UID, err = strconv.Atoi(fields[1]) // effective
		case "Gid":
			st.GID, err = strconv.Atoi(fields[1])
		case "CapEff", "CapPrm", "CapBnd":
			var n uint64
			n, err = strconv.ParseUint(fields[0], 16, 64)
			switch key {
			case "CapEff":
				st.Effective = Set(n)
			case "CapPrm":
				st.Permitted = Set(n)
			default:
				st.Bounding = Set(n)
			}
		case "NoNewPrivs":
			st.NoNewPrivs = fields[0] == "1"
		}
		if err != nil {
			return State{}, fmt.Errorf("parsing %s in /proc/self/status: %w", key, err)
		}
	}
	return st, sc.Err()
}

// ErrCannotSwitch is returned when the process is root but may not change
// its user (no SETUID or SETGID capability): it keeps running as root.
var ErrCannotSwitch = errors.New("running as root without SETUID and SETGID: cannot switch user")

// Drop makes a root process run as uid:gid with exactly the capabilities
// in keep (effective and permitted; none inheritable). A process that is
// not root already cannot gain anything: Drop only checks that it has keep.
// A root process that is not permitted all of keep still switches, keeping
// the part it has, and then reports what is missing: staying root would
// keep SETUID and SETGID for the process's whole life. ErrCannotSwitch and
// the errors before the switch leave the process running as it was.
func Drop(uid, gid int, keep Set) error {
	st, err := Current()
	if err != nil {
		return err
	}
	if st.UID != 0 {
		if !st.Effective.Has(keep) {
			return fmt.Errorf("running as uid %d with capabilities %s; %s needed", st.UID, st.Effective, keep&^st.Effective)
		}
		return nil
	}
	if !st.Effective.Has(Of(unix.CAP_SETUID, unix.CAP_SETGID)) {
		return ErrCannotSwitch
	}
	missing := keep &^ st.Permitted
	keep &= st.Permitted
	// Without keep-caps, switching away from uid 0 would empty the
	// permitted set of every thread.
	if err := allThreads(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1, 0); err != nil {
		return fmt.Errorf("setting keep-caps: %w", err)
	}
	if err := syscall.Setgroups([]int{gid}); err != nil {
		return fmt.Errorf("setting groups to %d: %w", gid, err)
	}
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return fmt.Errorf("switching to gid %d: %w", gid, err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return fmt.Errorf("switching to uid %d: %w", uid, err)
	}
	if err := setCaps(keep); err != nil {
		return fmt.Errorf("setting capabilities to %s: %w", keep, err)
	}
	if err := allThreads(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 0, 0); err != nil {
		return fmt.Errorf("clearing keep-caps: %w", err)
	}
	if missing != 0 {
		return fmt.Errorf("switched to %d:%d without %s, which this process was not permitted", uid, gid, missing)
	}
	return nil
}

// setCaps sets effective and permitted to keep and inheritable to none,
// on every thread.
func setCaps(keep Set) error {
	// On the heap, which the garbage collector never moves, so the
	// addresses stay valid while other threads run the same call.
	hdr := &unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := new([2]unix.CapUserData)
	for i := range data {
		v := uint32(uint64(keep) >> (32 * i))
		data[i].Effective, data[i].Permitted = v, v
	}
	err := allThreads(unix.SYS_CAPSET, uintptr(unsafe.Pointer(hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	runtime.KeepAlive(hdr)
	runtime.KeepAlive(data)
	return err
}

func allThreads(trap, a1, a2, a3 uintptr) error {
	if _, _, errno := syscall.AllThreadsSyscall(trap, a1, a2, a3); errno != 0 {
		if errno == syscall.ENOTSUP {
			return fmt.Errorf("%w (a binary built with cgo cannot change every thread's credentials; build with CGO_ENABLED=0)", errno)
		}
		return errno
	}
	return nil
}
