package release

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/heraldlb/herald/internal/ociimage"
)

// ImageConfig is what an operator or CI checks of one platform's image.
type ImageConfig struct {
	Platform   string            `json:"platform"`
	Digest     string            `json:"digest"`
	User       string            `json:"user"`
	Entrypoint []string          `json:"entrypoint"`
	Labels     map[string]string `json:"labels"`
	Files      []string          `json:"files"`
}

// Inspected is one image archive: its index digest, its names and each
// platform's configuration.
type Inspected struct {
	Archive string        `json:"archive"`
	Index   string        `json:"index"`
	Names   []string      `json:"names"`
	Images  []ImageConfig `json:"images"`
}

// Inspect reads an OCI archive as BuildImages writes it.
func Inspect(archive string) (*Inspected, error) {
	dir, err := os.MkdirTemp("", "herald-inspect-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if err := untar(archive, dir); err != nil {
		return nil, fmt.Errorf("unpacking %s: %w", archive, err)
	}
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the OCI layout of %s: %w", archive, err)
	}
	topManifest, err := top.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(topManifest.Manifests) != 1 {
		return nil, fmt.Errorf("%s: index.json lists %d entries, want 1", archive, len(topManifest.Manifests))
	}
	entry := topManifest.Manifests[0]
	out := &Inspected{Archive: filepath.Base(archive), Index: entry.Digest.String()}
	for _, k := range []string{ociimage.RefNameAnnotation, ociimage.ContainerdNameAnnotation} {
		if v := entry.Annotations[k]; v != "" {
			out.Names = append(out.Names, v)
		}
	}
	idx, err := top.ImageIndex(entry.Digest)
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, err
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		ic := ImageConfig{
			Platform: cfg.OS + "/" + cfg.Architecture, Digest: d.Digest.String(),
			User: cfg.Config.User, Entrypoint: cfg.Config.Entrypoint, Labels: cfg.Config.Labels,
		}
		layers, err := img.Layers()
		if err != nil {
			return nil, err
		}
		for _, l := range layers {
			rc, err := l.Uncompressed()
			if err != nil {
				return nil, err
			}
			tr := tar.NewReader(rc)
			for {
				h, err := tr.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					_ = rc.Close()
					return nil, err
				}
				ic.Files = append(ic.Files, fmt.Sprintf("/%s %o %d:%d", h.Name, h.Mode, h.Uid, h.Gid))
			}
			_ = rc.Close()
		}
		out.Images = append(out.Images, ic)
	}
	return out, nil
}

// Check says what is wrong with an inspected image of name at version.
func Check(in *Inspected, name, version string) []string {
	var problems []string
	var plats []string
	for _, ic := range in.Images {
		plats = append(plats, ic.Platform)
		if ic.User != "65532:65532" {
			problems = append(problems, fmt.Sprintf("%s: user %q, want 65532:65532", ic.Platform, ic.User))
		}
		if want := []string{"/" + name}; !slices.Equal(ic.Entrypoint, want) {
			problems = append(problems, fmt.Sprintf("%s: entrypoint %q, want %q", ic.Platform, ic.Entrypoint, want))
		}
		for _, k := range slices.Sorted(maps.Keys(map[string]bool{
			"org.opencontainers.image.version": true, "org.opencontainers.image.revision": true,
			"org.opencontainers.image.source": true, "org.opencontainers.image.licenses": true,
		})) {
			if ic.Labels[k] == "" {
				problems = append(problems, fmt.Sprintf("%s: label %s missing", ic.Platform, k))
			}
		}
		if v := ic.Labels["org.opencontainers.image.version"]; v != "" && v != version {
			problems = append(problems, fmt.Sprintf("%s: version label %q, want %q", ic.Platform, v, version))
		}
		if l := ic.Labels["org.opencontainers.image.licenses"]; l != "" && l != "Apache-2.0" {
			problems = append(problems, fmt.Sprintf("%s: licence label %q, want Apache-2.0", ic.Platform, l))
		}
	}
	slices.Sort(plats)
	if want := slices.Sorted(slices.Values(Platforms)); !slices.Equal(plats, want) {
		problems = append(problems, fmt.Sprintf("platforms %s, want %s", strings.Join(plats, ", "), strings.Join(want, ", ")))
	}
	return problems
}

func untar(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(dst, filepath.Clean(dir)+string(os.PathSeparator)) {
			return fmt.Errorf("archive entry %q leaves the archive", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			out, err := os.Create(dst)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("archive entry %q has unexpected type %c", h.Name, h.Typeflag)
		}
	}
}
