package speaker

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Recorder is an announcer that announces nothing: it logs and keeps the
// desired state it is given. Tests use it to watch decisions, and a
// speaker can run with it as a dry run.
type Recorder[T any] struct {
	Log  *slog.Logger
	Name string

	mu      sync.Mutex
	cur     []T
	changed time.Time
	sets    int
}

// Set records want.
func (r *Recorder[T]) Set(_ context.Context, want []T) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur = slices.Clone(want)
	r.changed = time.Now()
	r.sets++
	if r.Log != nil {
		r.Log.Debug("desired announcements", "announcer", r.Name, "count", len(want))
	}
	return nil
}

// Current returns the last desired state and when it was set.
func (r *Recorder[T]) Current() ([]T, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.cur), r.changed
}
