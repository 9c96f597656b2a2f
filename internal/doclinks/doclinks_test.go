package doclinks

import (
	"slices"
	"testing"
)

// The names of documents kept outside the repository, in pieces, so that
// this file does not itself refer to them.
const (
	spec  = "SP" + "EC"
	style = "STY" + "LE.md"
)

func TestCheck(t *testing.T) {
	files := map[string]string{
		"README.md":          "See [install](docs/install.md), [a section](docs/install.md#flags), [web](https://example.com/x.md) and docs/pools.md.\n",
		"docs/install.md":    "Back to [the README](../README.md) and [pools](pools.md).\nSee CHANGELOG.md and docs/design.md.\n",
		"docs/pools.md":      "[gone](missing.md) and [here](#top)\n",
		"cmd/x/main.go":      "// The flags are in docs/reference.md.\n// Build output: dist/RELEASE-NOTES.md\n",
		"internal/y/doc.go":  "// As " + spec + ".md says, and " + spec + " §4 too; see ../" + "shared/" + style + ".\n",
		"CHANGELOG.md":       "[0.1.0]: https://github.com/heraldlb/herald/releases/tag/v0.1.0\n",
		"config/x/kustom.md": "a directory link: [config](../../config) and [x](.)\n",
	}
	var got []string
	for _, p := range Check(files) {
		got = append(got, p.String())
	}
	slices.Sort(got)
	want := []string{
		"cmd/x/main.go:1: docs/reference.md: no such file in the repository",
		"docs/install.md:2: docs/design.md: no such file in the repository",
		"docs/pools.md:1: missing.md: link target does not exist",
		"internal/y/doc.go:1: ../" + "shared/: refers to a document outside the repository",
		"internal/y/doc.go:1: " + spec + " §: refers to a document outside the repository",
		"internal/y/doc.go:1: " + spec + ".md: refers to a document outside the repository",
		"internal/y/doc.go:1: " + style + ": refers to a document outside the repository",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got:\n%q\nwant:\n%q", got, want)
	}
}
