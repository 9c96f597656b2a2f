package ociimage

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

func testSpec(t *testing.T, content string) Spec {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "app")
	if err := os.WriteFile(bin, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return Spec{
		Platforms: map[string]map[string]string{
			"linux/arm64": {"/app": bin},
			"linux/amd64": {"/app": bin, "/etc/app/LICENSE": bin},
		},
		Entrypoint: []string{"/app"},
		User:       "65532:65532",
		Labels:     map[string]string{"org.opencontainers.image.version": "v1.2.3"},
		Created:    time.Unix(1700000000, 0).UTC(),
	}
}

func indexDigest(t *testing.T, s Spec) v1.Hash {
	t.Helper()
	idx, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestReproducible: the same inputs give the same digest and the same
// archive bytes, even from files written at other times; any change to an
// input changes the digest.
func TestReproducible(t *testing.T) {
	a := indexDigest(t, testSpec(t, "binary"))
	time.Sleep(10 * time.Millisecond) // the second copy's file times differ from the first's
	b := indexDigest(t, testSpec(t, "binary"))
	if a != b {
		t.Fatalf("two builds of the same inputs: %s and %s", a, b)
	}
	changed := testSpec(t, "binary")
	changed.Created = changed.Created.Add(time.Second)
	if indexDigest(t, changed) == a {
		t.Error("another creation time gave the same digest")
	}
	if indexDigest(t, testSpec(t, "other binary")) == a {
		t.Error("another binary gave the same digest")
	}

	archive := func() []byte {
		s := testSpec(t, "binary")
		idx, err := Build(s)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "layout")
		if err := WriteLayout(dir, idx, "example.com/app", "v1.2.3"); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteArchive(&buf, dir, s.Created); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	if !bytes.Equal(archive(), archive()) {
		t.Error("two archives of the same inputs differ")
	}
}

func TestBuildContents(t *testing.T) {
	s := testSpec(t, "binary")
	idx, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	if err := WriteLayout(dir, idx, "example.com/app", "v1.2.3"); err != nil {
		t.Fatal(err)
	}
	// Read back through the layout, as a registry client would.
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if got := tm.Manifests[0].Annotations[ContainerdNameAnnotation]; got != "example.com/app:v1.2.3" {
		t.Errorf("containerd name %q", got)
	}
	inner, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := inner.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 {
		t.Fatalf("%d manifests, want 2", len(im.Manifests))
	}
	for i, want := range []string{"amd64", "arm64"} {
		d := im.Manifests[i]
		if d.Platform == nil || d.Platform.Architecture != want || d.Platform.OS != "linux" {
			t.Errorf("manifest %d platform %+v, want linux/%s", i, d.Platform, want)
		}
		img, err := inner.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Architecture != want || cfg.Config.User != "65532:65532" || cfg.Config.Entrypoint[0] != "/app" ||
			cfg.Config.Labels["org.opencontainers.image.version"] != "v1.2.3" || !cfg.Created.Equal(s.Created) {
			t.Errorf("%s config: %+v", want, cfg)
		}
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	if _, err := Build(Spec{}); err == nil {
		t.Error("no platforms: built")
	}
	s := testSpec(t, "x")
	s.Platforms["linux/amd64"]["relative/path"] = "/dev/null"
	if _, err := Build(s); err == nil {
		t.Error("relative image path: built")
	}
	s = testSpec(t, "x")
	s.Platforms["linux/amd64"]["/missing"] = filepath.Join(t.TempDir(), "missing")
	if _, err := Build(s); err == nil {
		t.Error("missing file: built")
	}
}
