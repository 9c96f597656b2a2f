package ociimage

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// Annotations on the index's entry in index.json: the OCI one carries the
// tag (skopeo's oci-archive:FILE:TAG, crane), containerd's the full
// reference (`ctr images import` names the image after it).
const (
	RefNameAnnotation        = "org.opencontainers.image.ref.name"
	ContainerdNameAnnotation = "io.containerd.image.name"
)

// WriteLayout writes idx as an OCI image layout into dir, which must not
// exist yet or be empty, with ref ("registry/repo:tag") as its name.
func WriteLayout(dir string, idx v1.ImageIndex, repo, tag string) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("creating the OCI layout in %s: %w", dir, err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		RefNameAnnotation:        tag,
		ContainerdNameAnnotation: repo + ":" + tag,
	})); err != nil {
		return fmt.Errorf("writing the image index into %s: %w", dir, err)
	}
	return nil
}

// WriteArchive writes the OCI layout in dir to w as a tar archive: files
// in lexical order, owned by root, with times set to mtime, so the archive
// is as reproducible as the layout.
func WriteArchive(w io.Writer, dir string, mtime time.Time) error {
	tw := tar.NewWriter(w)
	// WalkDir visits entries in lexical order.
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Format: tar.FormatPAX}
		if d.IsDir() {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", modeExec
			return tw.WriteHeader(hdr)
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, modeFile, st.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return fmt.Errorf("archiving the OCI layout %s: %w", dir, err)
	}
	return tw.Close()
}
