package docref

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// namedValues are the kinds of constants an operator meets in the API and
// must find in docs/reference.md, by the prefix of their Go names.
var namedValues = []string{"Annotation", "Condition", "Reason", "Event"}

// TestEveryNameIsDocumented reads the string constants of herald's
// packages whose names start with a prefix above and fails for each value
// that docs/reference.md does not mention in backticks. It reads only
// literal constants: a name built any other way is not one an operator
// types.
func TestEveryNameIsDocumented(t *testing.T) {
	page, err := os.ReadFile(Page())
	if err != nil {
		t.Fatal(err)
	}
	found := constants(t, filepath.Join(filepath.Dir(Page()), "..", "internal"))
	if len(found) < 20 {
		t.Fatalf("found only %d constants; the scan is broken: %v", len(found), found)
	}
	for _, c := range found {
		if !strings.Contains(string(page), "`"+c.value+"`") {
			t.Errorf("%s (%s = %q) is not in docs/reference.md", c.pos, c.name, c.value)
		}
	}
}

// TestCheckReportsAStaleBlock proves Check can fail.
func TestCheckReportsAStaleBlock(t *testing.T) {
	page := "x\n<!-- BEGIN a -->\n```text\nold\n```\n<!-- END a -->\n"
	got, _, _, err := Block(page, "a")
	if err != nil || got != "```text\nold\n```\n" {
		t.Fatalf("Block = %q, %v", got, err)
	}
	if _, _, _, err := Block(page, "b"); err == nil {
		t.Error("a missing block was found")
	}
}

type constant struct{ pos, name, value string }

func constants(t *testing.T, root string) []constant {
	t.Helper()
	var out []constant
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "client") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			// The allocator's Reason maps its errors to the words that
			// start AllocationFailed messages: every literal in it is one.
			if fd, ok := decl.(*ast.FuncDecl); ok && fd.Name.Name == "Reason" && fd.Recv == nil && f.Name.Name == "allocator" {
				ast.Inspect(fd.Body, func(n ast.Node) bool {
					if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						out = append(out, constant{fset.Position(lit.Pos()).String(), "allocator.Reason", v})
					}
					return true
				})
				continue
			}
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !name.IsExported() || i >= len(vs.Values) || !slices.ContainsFunc(namedValues, func(p string) bool { return strings.HasPrefix(name.Name, p) }) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						return err
					}
					out = append(out, constant{fset.Position(name.Pos()).String(), name.Name, v})
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
