package release

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/heraldlb/herald/internal/install"
	"github.com/heraldlb/herald/internal/ociimage"
)

// Images are the images a release builds, by binary name.
var Images = []string{"herald-controller", "herald-speaker"}

// Platforms the images are built for.
var Platforms = []string{"linux/amd64", "linux/arm64"}

// Source is the repository the images' labels point to.
const Source = "https://github.com/heraldlb/herald"

// semver is a release version as tags carry it: vMAJOR.MINOR.PATCH with an
// optional pre-release suffix.
var semver = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$`)

// Options say what to build from where.
type Options struct {
	Version  string
	Revision string
	// Registry prefixes the image names (ghcr.io/heraldlb).
	Registry string
	// BinDir holds the binaries as BinDir/OS-ARCH/NAME.
	BinDir string
	// Dist receives the artifacts.
	Dist string
	// Created is SOURCE_DATE_EPOCH: the time in every image.
	Created time.Time
	// License is the licence file put into each image.
	License string
	// Platforms the images are built for (default: Platforms). The
	// kubelet lab builds its nodes' platform only.
	Platforms []string
}

// Built is one image written by BuildImages.
type Built struct {
	Name    string // herald-speaker
	Repo    string // ghcr.io/heraldlb/herald-speaker
	Digest  string // sha256:... of the index
	Archive string // path of the OCI archive
	Layout  string // path of the OCI layout directory
}

// Ref is the image's pinned reference, repo:tag@digest.
func (b Built) Ref(tag string) string { return b.Repo + ":" + tag + "@" + b.Digest }

// CheckVersion refuses anything that is not a release tag.
func CheckVersion(v string) error {
	if !semver.MatchString(v) {
		return fmt.Errorf("version %q is not vMAJOR.MINOR.PATCH[-PRERELEASE]", v)
	}
	return nil
}

// Labels are the OCI annotations every image and index carries.
func Labels(o Options, name string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       name,
		"org.opencontainers.image.description": description(name),
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.revision":    o.Revision,
		"org.opencontainers.image.source":      Source,
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.created":     o.Created.UTC().Format(time.RFC3339),
	}
}

func description(name string) string {
	if name == "herald-speaker" {
		return "herald's per-node speaker: elects over memberlist and announces Service addresses over ARP/NDP or BGP"
	}
	return "herald's controller: assigns addresses from IPPools to LoadBalancer Services"
}

// BuildImages writes an OCI layout (Dist/oci/NAME) and an OCI archive
// (Dist/NAME-VERSION.oci.tar) for each image.
func BuildImages(o Options) ([]Built, error) {
	if err := CheckVersion(o.Version); err != nil {
		return nil, err
	}
	var out []Built
	for _, name := range Images {
		spec := ociimage.Spec{
			Platforms:  map[string]map[string]string{},
			Entrypoint: []string{"/" + name},
			User:       "65532:65532",
			Labels:     Labels(o, name),
			Created:    o.Created,
		}
		plats := o.Platforms
		if len(plats) == 0 {
			plats = Platforms
		}
		for _, p := range plats {
			files := map[string]string{"/" + name: filepath.Join(o.BinDir, strings.ReplaceAll(p, "/", "-"), name)}
			if o.License != "" {
				files["/LICENSE"] = o.License
			}
			spec.Platforms[p] = files
		}
		idx, err := ociimage.Build(spec)
		if err != nil {
			return nil, fmt.Errorf("building %s: %w", name, err)
		}
		digest, err := idx.Digest()
		if err != nil {
			return nil, err
		}
		b := Built{
			Name: name, Repo: o.Registry + "/" + name, Digest: digest.String(),
			Layout:  filepath.Join(o.Dist, "oci", name),
			Archive: filepath.Join(o.Dist, name+"-"+o.Version+".oci.tar"),
		}
		if err := os.RemoveAll(b.Layout); err != nil {
			return nil, err
		}
		if err := ociimage.WriteLayout(b.Layout, idx, b.Repo, o.Version); err != nil {
			return nil, err
		}
		if err := writeArchive(b.Archive, b.Layout, o.Created); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func writeArchive(path, layout string, mtime time.Time) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := ociimage.WriteArchive(f, layout, mtime); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// PinnedManifest renders configDir (config/default) with every image
// replaced by its pinned reference.
func PinnedManifest(configDir string, o Options, built []Built) ([]byte, error) {
	var images []install.Image
	for _, b := range built {
		images = append(images, install.Image{Name: "ghcr.io/heraldlb/" + b.Name, NewName: b.Repo, NewTag: o.Version, Digest: b.Digest})
	}
	return install.RenderWithImages(configDir, images)
}

// WriteSums writes SHA256SUMS in dir over every regular file directly in
// it, by name (the layouts under oci/ are inside the archives), in sha256sum's
// format so `sha256sum -c SHA256SUMS` checks them.
func WriteSums(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var lines []string
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "SHA256SUMS" {
			continue
		}
		sum, err := fileSum(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		lines = append(lines, sum+"  "+e.Name())
	}
	return os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
