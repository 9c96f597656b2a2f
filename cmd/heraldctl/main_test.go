package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The test binary doubles as heraldctl when this variable is set, so the
// real exit codes and the kubectl-herald name are exercised.
const runMainEnv = "HERALDCTL_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
	}
	os.Exit(m.Run())
}

func runAs(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	link := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(os.Args[0], link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestExitCodesAndPluginName(t *testing.T) {
	out, code := runAs(t, "kubectl-herald", "pools", "-o", "xml")
	if code != 2 || !strings.Contains(out, `kubectl-herald pools: invalid -o "xml"`) {
		t.Errorf("bad -o: exit %d, output:\n%s", code, out)
	}
	out, code = runAs(t, "heraldctl", "--nope")
	if code != 2 || !strings.Contains(out, "flag provided but not defined: -nope") {
		t.Errorf("unknown flag: exit %d, output:\n%s", code, out)
	}
	out, code = runAs(t, "heraldctl", "import-metallb", "-f", "../../internal/ctl/testdata/import/l2-simple/in.yaml")
	if code != 0 || !strings.Contains(out, "kind: IPPool") {
		t.Errorf("import: exit %d, output:\n%s", code, out)
	}
	out, code = runAs(t, "heraldctl", "--help")
	if code != 0 || !strings.Contains(out, "kubectl herald") {
		t.Errorf("--help: exit %d, output:\n%s", code, out)
	}
}
