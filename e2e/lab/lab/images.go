package lab

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The images of a kubelet lab. They live only in the nodes' containerd
// stores, imported from an archive the lab builds; the registry's name
// ends in .invalid, a top-level domain that never resolves, so a pull
// that should not happen fails at once instead of reaching anywhere.
const (
	PauseImage   = "lab.invalid/herald/pause:lab"
	BackendImage = "lab.invalid/herald/backend:lab"
)

// labImage is one image the lab builds from a static binary.
type labImage struct {
	Ref        string
	Binary     string // file in BinDir
	Entrypoint []string
	User       string
}

// labImages are the images every kubelet node gets.
var labImages = []labImage{
	{Ref: PauseImage, Binary: "pause", Entrypoint: []string{"/pause"}, User: "65535:65535"},
	{Ref: BackendImage, Binary: "backend", Entrypoint: []string{"/backend"}, User: "65532:65532"},
}

// writeImageArchive writes the images, each one static binary on an empty
// base, into one docker-save style archive at path, which
// `ctr images import` reads.
func writeImageArchive(path, binDir string, images []labImage) error {
	refs := map[name.Reference]v1.Image{}
	for _, im := range images {
		img, err := binaryImage(filepath.Join(binDir, im.Binary), im.Entrypoint, im.User)
		if err != nil {
			return fmt.Errorf("building image %s: %w", im.Ref, err)
		}
		ref, err := name.ParseReference(im.Ref)
		if err != nil {
			return fmt.Errorf("building image %s: %w", im.Ref, err)
		}
		refs[ref] = img
	}
	if err := tarball.MultiRefWriteToFile(path, refs); err != nil {
		return fmt.Errorf("writing image archive %s: %w", path, err)
	}
	return nil
}

// binaryImage is an image holding only the executable at bin, as
// /<basename of bin>, run as user.
func binaryImage(bin string, entrypoint []string, user string) (v1.Image, error) {
	raw, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.WriteHeader(&tar.Header{
		Name: filepath.Base(bin), Mode: 0o755, Size: int64(len(raw)),
		Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0),
	}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(raw); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	content := layer.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(content)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint = entrypoint
	cf.Config.User = user
	return mutate.ConfigFile(img, cf)
}
