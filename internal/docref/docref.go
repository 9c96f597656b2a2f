package docref

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// UpdateEnv set to 1 makes Check rewrite the page instead of failing.
const UpdateEnv = "HERALD_UPDATE_DOCS"

// Page is the path of docs/reference.md, found from this source file so
// that tests of any package reach it.
func Page() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "docs", "reference.md")
}

// Block returns the text between "<!-- BEGIN name -->" and "<!-- END name
// -->" in page, and where it starts and ends.
func Block(page, name string) (text string, start, end int, err error) {
	begin, stop := "<!-- BEGIN "+name+" -->\n", "<!-- END "+name+" -->"
	i := strings.Index(page, begin)
	if i < 0 {
		return "", 0, 0, fmt.Errorf("no %q marker", strings.TrimSpace(begin))
	}
	start = i + len(begin)
	j := strings.Index(page[start:], stop)
	if j < 0 {
		return "", 0, 0, fmt.Errorf("no %q marker after %q", stop, strings.TrimSpace(begin))
	}
	end = start + j
	return page[start:end], start, end, nil
}

// Check fails t unless the block called name in docs/reference.md holds
// content as a fenced code block; with HERALD_UPDATE_DOCS=1 it writes it.
func Check(t testing.TB, name, content string) {
	t.Helper()
	want := "```text\n" + strings.TrimRight(content, "\n") + "\n```\n"
	path := Page()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, start, end, err := Block(string(raw), name)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if got == want {
		return
	}
	if os.Getenv(UpdateEnv) == "1" {
		page := string(raw[:start]) + want + string(raw[end:])
		if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: block %s rewritten", path, name)
		return
	}
	t.Errorf("docs/reference.md block %s is stale; run `%s=1 go test` of this package, or `make docs`:\n--- in the page:\n%s--- generated:\n%s", name, UpdateEnv, got, want)
}
