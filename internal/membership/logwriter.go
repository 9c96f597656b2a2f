package membership

import (
	"context"
	"io"
	"log/slog"
	"strings"
)

// logWriter bridges memberlist's *log.Logger into slog: memberlist prefixes
// each line with its level ("[DEBUG] memberlist: ...").
type logWriter struct{ log *slog.Logger }

var _ io.Writer = (*logWriter)(nil)

func (w *logWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	if rest, ok := strings.CutPrefix(msg, "["); ok {
		if tag, text, ok := strings.Cut(rest, "]"); ok {
			switch tag {
			case "DEBUG":
				level = slog.LevelDebug
			case "INFO":
				level = slog.LevelInfo
			case "WARN":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			msg = strings.TrimSpace(text)
		}
	}
	ctx := context.Background()
	if w.log.Enabled(ctx, level) {
		w.log.Log(ctx, level, strings.TrimPrefix(msg, "memberlist: "))
	}
	return len(p), nil
}
