package ctl

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/heraldlb/herald/internal/metricsserver"
	"github.com/heraldlb/herald/internal/version"

	"github.com/heraldlb/herald/internal/docref"
)

// TestBuildInfoRoundTrip reads back what every herald metrics endpoint
// serves: heraldctl version parses the same metric the binaries export.
func TestBuildInfoRoundTrip(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metricsserver.BuildInfo())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var page bytes.Buffer
	enc := expfmt.NewEncoder(&page, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	ver, rev, err := buildInfo(&page)
	if err != nil {
		t.Fatal(err)
	}
	want := version.Get()
	if ver != want.Version || rev != want.Revision {
		t.Errorf("buildInfo = %q, %q; want %q, %q", ver, rev, want.Version, want.Revision)
	}
	if _, _, err := buildInfo(strings.NewReader("other_metric 1\n")); err == nil {
		t.Error("a page without herald_build_info parsed")
	}
}

func TestVersionFlags(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version", "--client"}} {
		var out, errb bytes.Buffer
		if code := Main(t.Context(), Env{Out: &out, Err: &errb}, args); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		if !strings.Contains(out.String(), version.Get().Version) {
			t.Errorf("%v printed %q, want the version %q", args, out.String(), version.Get().Version)
		}
	}
}

// TestReference keeps the heraldctl blocks of docs/reference.md equal to
// each command's --help.
func TestReference(t *testing.T) {
	for _, tc := range []struct{ block, cmd string }{
		{"heraldctl", ""}, {"heraldctl status", "status"}, {"heraldctl pools", "pools"},
		{"heraldctl import-metallb", "import-metallb"}, {"heraldctl version", "version"},
		{"heraldctl control-plane manifest", "control-plane manifest"},
	} {
		args := append(strings.Fields(tc.cmd), "--help")
		var out bytes.Buffer
		if code := Main(t.Context(), Env{Name: "heraldctl", Out: &out, Err: &out}, args); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, out.String())
		}
		docref.Check(t, tc.block, out.String())
	}
}
