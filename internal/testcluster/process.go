package testcluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one running control-plane binary.
type process struct {
	name string
	cmd  *exec.Cmd
	tail *tailBuffer
	done chan struct{} // closed once the process has been reaped
	err  error         // Wait's result, valid after done
}

// startProcess runs bin in its own process group, so that stopping it also
// stops anything it forks, with output going to out and into a tail kept
// for error messages.
func startProcess(name, bin string, args []string, out io.Writer) (*process, error) {
	p := &process{name: name, tail: newTailBuffer(64 << 10), done: make(chan struct{})}
	w := io.MultiWriter(out, p.tail)
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = w
	p.cmd.Stderr = w
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, and the error saying how,
// including the tail of its output.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, fmt.Errorf("%s exited (%v); last output:\n%s", p.name, p.err, p.tail.lastLines(30))
	default:
		return false, nil
	}
}

// stop kills the process group and waits for the process to be reaped.
// SIGKILL rather than SIGTERM: kube-apiserver can take over 10 s to exit
// gracefully once CRDs are installed, and every caller either throws the
// state away or wants an outage, which a crash is.
func (p *process) stop() error {
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	pgid := p.cmd.Process.Pid
	// The negative pid addresses the whole group; ESRCH means it is gone.
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing %s: %w", p.name, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, pgid)
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(maxBytes int) *tailBuffer { return &tailBuffer{max: maxBytes} }

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

func (t *tailBuffer) lastLines(n int) string {
	s := strings.TrimRight(t.String(), "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// prefixWriter tags each line of one process's output with its name, so
// that several processes can share one Options.Log. Writes to the shared
// writer are serialised by mu.
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix []byte
	line   []byte // an unfinished line
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.line = append(p.line, b...)
			break
		}
		p.line = append(p.line, b[:i+1]...)
		b = b[i+1:]
		out := append(append([]byte(nil), p.prefix...), p.line...)
		p.line = p.line[:0]
		if _, err := p.w.Write(out); err != nil {
			return n, err
		}
	}
	return n, nil
}

// openLog returns where a process's output goes: a prefixing view of
// shared when it is set, else a file of its own in dir.
func openLog(shared io.Writer, mu *sync.Mutex, dir, name string) (io.Writer, io.Closer, error) {
	if shared != nil {
		return &prefixWriter{mu: mu, w: shared, prefix: []byte("[" + name + "] ")}, io.NopCloser(nil), nil
	}
	f, err := os.OpenFile(dir+"/"+name+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s log: %w", name, err)
	}
	return f, f, nil
}
