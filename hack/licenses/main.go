// Command licenses fails when a module that herald's packages or tests
// are built from has a licence outside hack/licenses/allowed.txt (run by
// hack/verify.sh, so by `make verify` and CI). Modules whose licence files
// the scanner cannot identify are listed, with the licence a person
// checked, in hack/licenses/exceptions.txt.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"text/tabwriter"

	"github.com/heraldlb/herald/internal/licenses"
)

func main() {
	allowedFile := flag.String("allowed", "hack/licenses/allowed.txt", "SPDX identifiers allowed, one per line")
	exceptionsFile := flag.String("exceptions", "hack/licenses/exceptions.txt", "MODULE SPDX-ID lines for modules the scanner cannot identify")
	verbose := flag.Bool("v", false, "list every module with its licence")
	flag.Parse()
	if err := run(*allowedFile, *exceptionsFile, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "licenses:", err)
		os.Exit(1)
	}
}

func run(allowedFile, exceptionsFile string, verbose bool) error {
	p := licenses.Policy{Allowed: map[string]bool{}, Exceptions: map[string]string{}}
	allowed, err := readList(allowedFile)
	if err != nil {
		return err
	}
	for _, f := range allowed {
		p.Allowed[f[0]] = true
	}
	exc, err := readList(exceptionsFile)
	if err != nil {
		return err
	}
	for _, f := range exc {
		if len(f) < 2 {
			return fmt.Errorf("%s: %q: want MODULE SPDX-ID", exceptionsFile, strings.Join(f, " "))
		}
		p.Exceptions[f[0]] = f[1]
	}
	mods, err := modules()
	if err != nil {
		return err
	}
	results := licenses.Check(mods, p)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	failed := 0
	for _, r := range results {
		if r.Problem != "" {
			failed++
			_, _ = fmt.Fprintf(tw, "FAIL\t%s@%s\t%s\t%s\n", r.Path, r.Version, strings.Join(r.Licenses, ","), r.Problem)
		} else if verbose {
			_, _ = fmt.Fprintf(tw, "ok\t%s@%s\t%s\t%s\n", r.Path, r.Version, strings.Join(r.Licenses, ","), r.File)
		}
	}
	_ = tw.Flush()
	if failed > 0 {
		return fmt.Errorf("%d of %d modules fail the licence check (allowed: %s; exceptions: %s)", failed, len(results), allowedFile, exceptionsFile)
	}
	fmt.Printf("licenses: %d modules, all under allowed licences\n", len(results))
	return nil
}

func readList(path string) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return licenses.ReadList(f)
}

// modules lists the modules of every package herald's packages and tests
// import, herald itself excluded.
func modules() ([]licenses.Module, error) {
	cmd := exec.Command("go", "list", "-deps", "-test", "-f", "{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}} {{.Dir}}{{end}}{{end}}", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing dependencies: %w: %s", err, stderr.String())
	}
	seen := map[string]bool{}
	var mods []licenses.Module
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || seen[f[0]] {
			continue
		}
		seen[f[0]] = true
		mods = append(mods, licenses.Module{Path: f[0], Version: f[1], Dir: f[2]})
	}
	return mods, sc.Err()
}
