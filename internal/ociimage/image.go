package ociimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Spec describes one image, built for every platform it lists.
type Spec struct {
	// Platforms maps "os/arch" (linux/amd64) to the files of that
	// platform's image: absolute path in the image -> file on disk.
	Platforms map[string]map[string]string
	// Entrypoint is the image's ENTRYPOINT.
	Entrypoint []string
	// User is "uid:gid"; numeric, since the base has no /etc/passwd.
	User string
	// Labels become the image configuration's labels and the index's
	// annotations (org.opencontainers.image.*).
	Labels map[string]string
	// Created is the creation time recorded in the image and on every
	// file; callers pass SOURCE_DATE_EPOCH for reproducible builds.
	Created time.Time
}

// Executable files get 0755, everything else 0644: nothing in these
// images is ever written at run time (the root file system is read-only).
const (
	modeExec = 0o755
	modeFile = 0o644
)

// Build returns the image index of spec: one image per platform, in
// platform order so that the index digest does not depend on map order.
func Build(spec Spec) (v1.ImageIndex, error) {
	if len(spec.Platforms) == 0 {
		return nil, errors.New("building an image: no platform given")
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range slices.Sorted(maps.Keys(spec.Platforms)) {
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			return nil, fmt.Errorf("parsing platform %q: %w", p, err)
		}
		img, err := buildOne(spec, *plat, spec.Platforms[p])
		if err != nil {
			return nil, fmt.Errorf("building the %s image: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: plat},
		})
	}
	if len(spec.Labels) > 0 {
		idx = mutate.Annotations(idx, spec.Labels).(v1.ImageIndex)
	}
	return idx, nil
}

func buildOne(spec Spec, plat v1.Platform, files map[string]string) (v1.Image, error) {
	layer, err := filesLayer(files, spec.Entrypoint, spec.Created)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: spec.Created}, CreatedBy: "herald ociimage"},
	})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = plat.OS, plat.Architecture, plat.Variant
	cfg.Created = v1.Time{Time: spec.Created}
	cfg.Config = v1.Config{
		Entrypoint: spec.Entrypoint,
		User:       spec.User,
		Labels:     spec.Labels,
		WorkingDir: "/",
	}
	return mutate.ConfigFile(img, cfg)
}

// filesLayer packs files into one layer, sorted by path, owned by root,
// with fixed times. The entrypoint's binary is executable; so is any file
// that is executable on disk.
func filesLayer(files map[string]string, entrypoint []string, created time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, dst := range slices.Sorted(maps.Keys(files)) {
		if !path.IsAbs(dst) || path.Clean(dst) != dst {
			return nil, fmt.Errorf("image path %q is not a clean absolute path", dst)
		}
		for d := path.Dir(dst); d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		if err := tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: modeExec,
			ModTime: created, Format: tar.FormatPAX,
		}); err != nil {
			return nil, err
		}
	}
	for _, dst := range slices.Sorted(maps.Keys(files)) {
		raw, err := os.ReadFile(files[dst])
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", files[dst], err)
		}
		mode := int64(modeFile)
		if st, err := os.Stat(files[dst]); err == nil && st.Mode()&0o111 != 0 || len(entrypoint) > 0 && entrypoint[0] == dst {
			mode = modeExec
		}
		if err := tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg, Name: strings.TrimPrefix(dst, "/"), Mode: mode, Size: int64(len(raw)),
			ModTime: created, Format: tar.FormatPAX,
		}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(raw); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	content := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(content)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
