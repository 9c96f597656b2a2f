package release

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

const changelog = `# Changelog

## [Unreleased]

### Added
- something new

## [0.1.0] - 2026-12-04

### Added
- the first release

[Unreleased]: https://example.com/compare/v0.1.0...HEAD
[0.1.0]: https://example.com/releases/tag/v0.1.0
`

func TestNotes(t *testing.T) {
	got, err := Notes(changelog, "v0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "## [0.1.0] - 2026-12-04") || !strings.Contains(got, "the first release") ||
		strings.Contains(got, "something new") || strings.Contains(got, "https://") {
		t.Errorf("notes of v0.1.0:\n%s", got)
	}
	pre, err := Notes(changelog, "v0.2.0-rc.1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(pre, "something new") || strings.Contains(pre, "the first release") {
		t.Errorf("a pre-release takes [Unreleased]:\n%s", pre)
	}
	if _, err := Notes(changelog, "v0.2.0"); err == nil {
		t.Error("a release without a section got notes")
	}
	if v, err := Latest(changelog); err != nil || v != "v0.1.0" {
		t.Errorf("Latest = %q, %v", v, err)
	}
}

func TestCheckVersion(t *testing.T) {
	for _, v := range []string{"v0.1.0", "v1.20.3", "v0.0.0-test", "v2.0.0-rc.1"} {
		if err := CheckVersion(v); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
	for _, v := range []string{"", "0.1.0", "v1.2", "v01.2.3", "latest", "v1.2.3+meta"} {
		if CheckVersion(v) == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

// TestBuildImagesTwice builds the release images twice from the same
// binaries into two directories: digests and archive bytes are equal, and
// Check finds nothing wrong; a broken configuration is reported.
func TestBuildImagesTwice(t *testing.T) {
	bin := t.TempDir()
	for _, p := range Platforms {
		dir := filepath.Join(bin, strings.ReplaceAll(p, "/", "-"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range Images {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(name+" for "+p), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	build := func() []Built {
		o := Options{Version: "v0.0.0-test", Revision: "abc", Registry: "example.com/herald",
			BinDir: bin, Dist: t.TempDir(), Created: time.Unix(1700000000, 0)}
		b, err := BuildImages(o)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := build(), build()
	for i := range a {
		if a[i].Digest != b[i].Digest {
			t.Errorf("%s: digests %s and %s", a[i].Name, a[i].Digest, b[i].Digest)
		}
		ra, _ := os.ReadFile(a[i].Archive)
		rb, _ := os.ReadFile(b[i].Archive)
		if len(ra) == 0 || !bytes.Equal(ra, rb) {
			t.Errorf("%s: archives differ (%d and %d bytes)", a[i].Name, len(ra), len(rb))
		}
		in, err := Inspect(a[i].Archive)
		if err != nil {
			t.Fatal(err)
		}
		if in.Index != a[i].Digest {
			t.Errorf("%s: inspected index %s, built %s", a[i].Name, in.Index, a[i].Digest)
		}
		if p := Check(in, a[i].Name, "v0.0.0-test"); len(p) > 0 {
			t.Errorf("%s: %v", a[i].Name, p)
		}
		in.Images[0].User = "0:0"
		in.Images = in.Images[1:2]
		if p := Check(in, a[i].Name, "v0.0.1"); len(p) < 2 {
			t.Errorf("a wrong version and a missing platform gave %v", p)
		}
	}
}

// TestPinnedManifest renders the real config/default with pinned images:
// every herald image in it carries tag and digest.
func TestPinnedManifest(t *testing.T) {
	built := []Built{
		{Name: "herald-controller", Repo: "example.com/herald/herald-controller", Digest: "sha256:" + strings.Repeat("a", 64)},
		{Name: "herald-speaker", Repo: "example.com/herald/herald-speaker", Digest: "sha256:" + strings.Repeat("b", 64)},
	}
	out, err := PinnedManifest("../../config/default", Options{Version: "v9.9.9"}, built)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range built {
		if want := "image: " + b.Ref("v9.9.9"); !strings.Contains(string(out), want) {
			t.Errorf("rendered manifest lacks %q", want)
		}
	}
	if strings.Contains(string(out), "ghcr.io/heraldlb/") {
		t.Error("an unpinned herald image is left in the manifest")
	}
}

// TestManifestsInstallTheLatestRelease keeps config/default's image tags
// (and so manifests/install.yaml) on the newest release of CHANGELOG.md.
func TestManifestsInstallTheLatestRelease(t *testing.T) {
	cl, err := os.ReadFile("../../CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	latest, err := Latest(string(cl))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Notes(string(cl), latest); err != nil {
		t.Fatal(err)
	}
	var k struct {
		Images []struct {
			Name   string `json:"name"`
			NewTag string `json:"newTag"`
		} `json:"images"`
	}
	raw, err := os.ReadFile("../../config/default/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &k); err != nil {
		t.Fatal(err)
	}
	if len(k.Images) != len(Images) {
		t.Fatalf("config/default sets %d images, want %d", len(k.Images), len(Images))
	}
	for _, im := range k.Images {
		if im.NewTag != latest {
			t.Errorf("config/default installs %s:%s; the newest release in CHANGELOG.md is %s", im.Name, im.NewTag, latest)
		}
	}
}
