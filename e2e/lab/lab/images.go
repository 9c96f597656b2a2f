package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/heraldlb/herald/internal/ociimage"
	"github.com/heraldlb/herald/internal/release"
)

// The lab's own images. They live only in the nodes' containerd stores,
// imported from archives the lab builds; the registry's name ends in
// .invalid, a top-level domain that never resolves, so a pull that should
// not happen fails at once instead of reaching anywhere.
const (
	labRegistry  = "lab.invalid/herald"
	labTag       = "lab"
	PauseImage   = labRegistry + "/pause:" + labTag
	BackendImage = labRegistry + "/backend:" + labTag
)

// LabVersion is the version the kubelet lab builds herald's release
// images as; install.yaml's images are overridden to it.
const LabVersion = "v0.0.0-lab"

// labImage is one image the lab builds from a static binary.
type labImage struct {
	Name   string // repository under labRegistry, and binary in BinDir
	UserID string
}

// labImages are the images every kubelet node gets besides herald's.
var labImages = []labImage{
	{Name: "pause", UserID: "65535:65535"},
	{Name: "backend", UserID: "65532:65532"},
}

// nodePlatform is the platform of the binaries the lab builds.
var nodePlatform = "linux/" + runtime.GOARCH

// buildImageArchives writes every image a kubelet node imports into
// dir/images: the pause and backend images, and herald's controller and
// speaker images built by the release code (the same builder and layout
// as `make images`, for the nodes' platform only) from the binaries in
// binDir. It returns the archives.
func buildImageArchives(dir, binDir string) ([]string, error) {
	out := filepath.Join(dir, "images")
	if err := os.RemoveAll(out); err != nil {
		return nil, err
	}
	var archives []string
	for _, im := range labImages {
		idx, err := ociimage.Build(ociimage.Spec{
			Platforms:  map[string]map[string]string{nodePlatform: {"/" + im.Name: filepath.Join(binDir, im.Name)}},
			Entrypoint: []string{"/" + im.Name},
			User:       im.UserID,
			Created:    time.Unix(0, 0).UTC(),
		})
		if err != nil {
			return nil, fmt.Errorf("building image %s: %w", im.Name, err)
		}
		layout := filepath.Join(out, "oci", im.Name)
		if err := ociimage.WriteLayout(layout, idx, labRegistry+"/"+im.Name, labTag); err != nil {
			return nil, err
		}
		archive := filepath.Join(out, im.Name+".oci.tar")
		f, err := os.Create(archive)
		if err != nil {
			return nil, err
		}
		err = ociimage.WriteArchive(f, layout, time.Unix(0, 0))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		archives = append(archives, archive)
	}
	// release.BuildImages reads BinDir/OS-ARCH/NAME.
	platDir := filepath.Join(out, "bin", strings.ReplaceAll(nodePlatform, "/", "-"))
	if err := os.MkdirAll(platDir, 0o755); err != nil {
		return nil, err
	}
	for _, name := range release.Images {
		if err := os.Link(filepath.Join(binDir, name), filepath.Join(platDir, name)); err != nil {
			return nil, fmt.Errorf("staging %s for its image: %w", name, err)
		}
	}
	built, err := release.BuildImages(release.Options{
		Version: LabVersion, Revision: "lab", Registry: "ghcr.io/heraldlb",
		BinDir: filepath.Join(out, "bin"), Dist: out, Created: time.Unix(0, 0).UTC(),
		Platforms: []string{nodePlatform},
	})
	if err != nil {
		return nil, fmt.Errorf("building herald's images: %w", err)
	}
	for _, b := range built {
		archives = append(archives, b.Archive)
	}
	return archives, nil
}
