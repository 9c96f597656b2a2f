package doclinks

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Problem is one bad reference.
type Problem struct {
	File string
	Line int
	Ref  string
	Why  string
}

func (p Problem) String() string { return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Ref, p.Why) }

var (
	// outside are documents that live outside the repository: the project
	// must stand on its own, so no file may point at them.
	// (Written so that the pattern does not match itself.)
	outside = regexp.MustCompile(`\bSPEC\.md\b|\bSTYLE\.md\b|\bSPEC[ ]§|\.\./shared/`)
	// mdLink is a Markdown inline link or image: [text](target).
	mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	// mdMention is a path or name of a Markdown file in any text.
	mdMention = regexp.MustCompile(`[A-Za-z0-9_][A-Za-z0-9_./-]*\.md\b`)
)

// Check looks at files (repository-relative path -> content) and returns
// every reference to a document that is not among them.
func Check(files map[string]string) []Problem {
	base := map[string]bool{}
	for f := range files {
		base[path.Base(f)] = true
	}
	var out []Problem
	for name, content := range files {
		for i, line := range strings.Split(content, "\n") {
			n := i + 1
			// One problem per document and line: a link is also a mention.
			reported := map[string]bool{}
			add := func(ref, why string) {
				key := path.Base(strings.SplitN(ref, "#", 2)[0])
				if !reported[key] {
					reported[key] = true
					out = append(out, Problem{name, n, ref, why})
				}
			}
			for _, m := range outside.FindAllString(line, -1) {
				add(m, "refers to a document outside the repository")
			}
			if strings.HasSuffix(name, ".md") {
				for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
					target := m[1]
					if isURL(target) || strings.HasPrefix(target, "#") {
						continue
					}
					target, _, _ = strings.Cut(target, "#")
					if !exists(files, path.Join(path.Dir(name), target)) {
						add(m[1], "link target does not exist")
					}
				}
			}
			for _, m := range mdMention.FindAllString(line, -1) {
				// dist/ holds build output (release notes), not documents.
				if isURLAround(line, m) || strings.HasPrefix(m, "dist/") {
					continue
				}
				if exists(files, path.Join(path.Dir(name), m)) || exists(files, path.Clean(m)) ||
					(!strings.Contains(m, "/") && base[m]) {
					continue
				}
				add(m, "no such file in the repository")
			}
		}
	}
	return out
}

func isURL(s string) bool {
	for _, p := range []string{"http://", "https://", "mailto:"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// isURLAround says whether m appears in line only as part of a URL, which
// points elsewhere on purpose.
func isURLAround(line, m string) bool {
	for _, f := range strings.FieldsFunc(line, func(r rune) bool {
		return r == ' ' || r == '(' || r == ')' || r == '<' || r == '>' || r == '"' || r == '`'
	}) {
		if strings.Contains(f, m) && !isURL(f) {
			return false
		}
	}
	return true
}

// exists says whether p names a file or a directory holding files.
func exists(files map[string]string, p string) bool {
	p = path.Clean(p)
	if _, ok := files[p]; ok {
		return true
	}
	for f := range files {
		if strings.HasPrefix(f, p+"/") {
			return true
		}
	}
	return false
}
