// Command doclinks fails when a tracked text file refers to a document
// that is not in the repository (run by hack/verify.sh).
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/heraldlb/herald/internal/doclinks"
)

func main() {
	out, err := exec.Command("git", "ls-files", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "doclinks: listing files:", err)
		os.Exit(1)
	}
	files := map[string]string{}
	for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// The checker's own tests are full of bad references on purpose.
		if strings.HasPrefix(f, "internal/doclinks/") && strings.HasSuffix(f, "_test.go") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil || bytes.IndexByte(raw, 0) >= 0 || !utf8.Valid(raw) {
			continue // deleted in the work tree, or binary
		}
		files[f] = string(raw)
	}
	problems := doclinks.Check(files)
	if len(problems) == 0 {
		fmt.Printf("doclinks: %d files, no reference to a missing document\n", len(files))
		return
	}
	lines := make([]string, 0, len(problems))
	for _, p := range problems {
		lines = append(lines, p.String())
	}
	slices.Sort(lines)
	fmt.Fprintln(os.Stderr, strings.Join(lines, "\n"))
	fmt.Fprintf(os.Stderr, "doclinks: %d references to documents that are not in the repository\n", len(problems))
	os.Exit(1)
}
