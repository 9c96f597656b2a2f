package bgp

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"sync/atomic"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// slogAdapter bridges GoBGP's pkg/log.Logger into slog. GoBGP's Fields
// become attributes (keys lower-cased: "Topic" → "topic", "Key" → "key"),
// its levels map onto slog's, and GetLevel reports the most verbose level the
// slog handler accepts, so GoBGP skips building debug messages nobody reads.
type slogAdapter struct {
	log *slog.Logger
	// level is what SetLevel asked for; GoBGP never calls it when embedded,
	// it is kept only to honour the interface.
	level atomic.Uint32
}

var _ gobgplog.Logger = (*slogAdapter)(nil)

func newSlogAdapter(l *slog.Logger) *slogAdapter {
	a := &slogAdapter{log: l}
	a.level.Store(uint32(gobgplog.TraceLevel))
	return a
}

func (a *slogAdapter) emit(level slog.Level, msg string, fields gobgplog.Fields) {
	ctx := context.Background()
	if !a.log.Enabled(ctx, level) {
		return
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		attrs = append(attrs, slog.Any(fieldKey(k), fields[k]))
	}
	a.log.LogAttrs(ctx, level, msg, attrs...)
}

// fieldKey turns GoBGP's field names into herald's log keys.
func fieldKey(k string) string {
	switch k {
	case "Err", "Error":
		return "err"
	case gobgplog.FieldFacility:
		return "facility"
	}
	return strings.ToLower(k)
}

// Panic logs and panics, as GoBGP's own logger does.
func (a *slogAdapter) Panic(msg string, fields gobgplog.Fields) {
	a.emit(slog.LevelError, msg, fields)
	panic("gobgp: " + msg)
}

// Fatal logs at error level. GoBGP's default logger exits the process; an
// embedded server must not, the speaker decides what a failure means.
func (a *slogAdapter) Fatal(msg string, fields gobgplog.Fields) {
	a.emit(slog.LevelError, msg, fields)
}

func (a *slogAdapter) Error(msg string, fields gobgplog.Fields) {
	a.emit(slog.LevelError, msg, fields)
}

func (a *slogAdapter) Warn(msg string, fields gobgplog.Fields) {
	a.emit(slog.LevelWarn, msg, fields)
}

func (a *slogAdapter) Info(msg string, fields gobgplog.Fields) {
	a.emit(slog.LevelInfo, msg, fields)
}

func (a *slogAdapter) Debug(msg string, fields gobgplog.Fields) {
	a.emit(slog.LevelDebug, msg, fields)
}

func (a *slogAdapter) SetLevel(level gobgplog.LogLevel) { a.level.Store(uint32(level)) }

// GetLevel is what GoBGP checks before building expensive debug output.
func (a *slogAdapter) GetLevel() gobgplog.LogLevel {
	ctx := context.Background()
	var l gobgplog.LogLevel
	switch {
	case a.log.Enabled(ctx, slog.LevelDebug):
		l = gobgplog.DebugLevel
	case a.log.Enabled(ctx, slog.LevelInfo):
		l = gobgplog.InfoLevel
	case a.log.Enabled(ctx, slog.LevelWarn):
		l = gobgplog.WarnLevel
	default:
		l = gobgplog.ErrorLevel
	}
	return min(l, gobgplog.LogLevel(a.level.Load()))
}
