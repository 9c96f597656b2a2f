package licenses

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/google/licensecheck"
)

// Module is one dependency: its path, version and directory on disk.
type Module struct {
	Path, Version, Dir string
}

// Result is what was found for one module.
type Result struct {
	Module
	Licenses []string // SPDX identifiers, sorted
	File     string   // the licence file they were read from
	// Problem is empty when the module passes.
	Problem string
}

// Policy is the allowed list and the verified exceptions.
type Policy struct {
	Allowed map[string]bool
	// Exceptions maps a module path to the licence a person verified for
	// it where the scanner cannot tell.
	Exceptions map[string]string
}

// minCoverage is how much of a licence file the matched licences must
// cover: files often carry a copyright line or a preamble around the
// licence text, but a file mostly unmatched is not identified.
const minCoverage = 75

// licenseFile matches the names modules keep their licence under.
var licenseFile = regexp.MustCompile(`(?i)^(licen[cs]e|copying)(\.(md|txt|markdown))?$|^licen[cs]e[-_.]`)

// Check classifies every module and says what is wrong.
func Check(mods []Module, p Policy) []Result {
	out := make([]Result, 0, len(mods))
	for _, m := range mods {
		out = append(out, check(m, p))
	}
	return out
}

func check(m Module, p Policy) Result {
	r := Result{Module: m}
	if lic, ok := p.Exceptions[m.Path]; ok {
		r.Licenses, r.File = []string{lic}, "(exceptions file)"
		if !p.Allowed[lic] {
			r.Problem = fmt.Sprintf("licence %s (from the exceptions file) is not allowed", lic)
		}
		return r
	}
	ids, file, err := identify(m.Dir)
	r.Licenses, r.File = ids, file
	switch {
	case err != nil:
		r.Problem = err.Error()
	case len(ids) == 0:
		r.Problem = "no licence file identified at the module's root"
	default:
		for _, id := range ids {
			if !p.Allowed[id] {
				r.Problem = fmt.Sprintf("licence %s is not on the allowed list", id)
				break
			}
		}
	}
	return r
}

// identify reads the licence files at the root of dir.
func identify(dir string) ([]string, string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, "", fmt.Errorf("reading the module directory: %w", err)
	}
	seen := map[string]bool{}
	var files []string
	for _, e := range entries {
		if e.IsDir() || !licenseFile.MatchString(e.Name()) || strings.HasSuffix(e.Name(), ".go") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, "", err
		}
		cov := licensecheck.Scan(raw)
		if cov.Percent < minCoverage {
			return nil, e.Name(), fmt.Errorf("%s: only %.0f%% of it matches a known licence", e.Name(), cov.Percent)
		}
		for _, m := range cov.Match {
			if !m.IsURL {
				seen[m.ID] = true
			}
		}
		files = append(files, e.Name())
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, strings.Join(files, ","), nil
}

// ReadList reads a file of one entry per line; '#' starts a comment.
// Each entry is split into its whitespace-separated fields.
func ReadList(r io.Reader) ([][]string, error) {
	var out [][]string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if f := strings.Fields(line); len(f) > 0 {
			out = append(out, f)
		}
	}
	return out, sc.Err()
}
