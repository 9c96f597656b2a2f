// Command release builds herald's release artifacts from binaries that the
// Makefile has already compiled (make images, make release):
//
//	release images  -version V -bin DIR -dist DIR   OCI image archives and layouts
//	release finish  -version V -dist DIR            install.yaml pinned by digest, notes, SHA256SUMS
//	release inspect ARCHIVE...                      print each image's configuration (JSON)
//	release check   -version V ARCHIVE...           fail unless user, entrypoint, labels and platforms are right
//
// SOURCE_DATE_EPOCH sets the images' creation time (the Makefile passes the
// commit time), so building one commit twice gives the same digests.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/heraldlb/herald/internal/release"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: release images|finish|inspect|check [flags]")
	}
	fs := flag.NewFlagSet("release "+args[0], flag.ExitOnError)
	var o release.Options
	fs.StringVar(&o.Version, "version", "", "release version, vMAJOR.MINOR.PATCH[-PRERELEASE]")
	fs.StringVar(&o.Revision, "revision", "", "git revision the binaries were built from")
	fs.StringVar(&o.Registry, "registry", "ghcr.io/heraldlb", "registry and path the images are named under")
	fs.StringVar(&o.BinDir, "bin", "dist/bin", "directory of OS-ARCH/BINARY")
	fs.StringVar(&o.Dist, "dist", "dist", "output directory")
	config := fs.String("config", "config/default", "kustomization rendered into install.yaml")
	changelog := fs.String("changelog", "CHANGELOG.md", "Keep a Changelog file the release notes come from")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	created, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	o.Created = created
	switch args[0] {
	case "images":
		o.License = "LICENSE"
		built, err := release.BuildImages(o)
		if err != nil {
			return err
		}
		return writeBuilt(o.Dist, built)
	case "finish":
		return finish(o, *config, *changelog)
	case "inspect":
		for _, a := range fs.Args() {
			in, err := release.Inspect(a)
			if err != nil {
				return err
			}
			out, _ := json.MarshalIndent(in, "", "  ")
			fmt.Println(string(out))
		}
		return nil
	case "check":
		var problems []string
		for _, a := range fs.Args() {
			in, err := release.Inspect(a)
			if err != nil {
				return err
			}
			name := strings.TrimSuffix(filepath.Base(a), "-"+o.Version+".oci.tar")
			for _, p := range release.Check(in, name, o.Version) {
				problems = append(problems, filepath.Base(a)+": "+p)
			}
			fmt.Printf("%s: index %s, %d platforms\n", filepath.Base(a), in.Index, len(in.Images))
		}
		if len(problems) > 0 {
			return errors.New(strings.Join(problems, "\n"))
		}
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// builtFile records BuildImages' result for `finish`, which runs after the
// heraldctl builds.
const builtFile = "images.json"

func writeBuilt(dist string, built []release.Built) error {
	raw, err := json.MarshalIndent(built, "", "  ")
	if err != nil {
		return err
	}
	for _, b := range built {
		fmt.Printf("%s %s\n", b.Archive, b.Digest)
	}
	return os.WriteFile(filepath.Join(dist, "oci", builtFile), raw, 0o644)
}

// notesFile is the release notes' name in the dist directory.
const notesFile = "RELEASE-NOTES" + ".md"

func finish(o release.Options, config, changelog string) error {
	raw, err := os.ReadFile(filepath.Join(o.Dist, "oci", builtFile))
	if err != nil {
		return fmt.Errorf("reading the built images (run `release images` first): %w", err)
	}
	var built []release.Built
	if err := json.Unmarshal(raw, &built); err != nil {
		return err
	}
	manifest, err := release.PinnedManifest(config, o, built)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.Dist, "install.yaml"), manifest, 0o644); err != nil {
		return err
	}
	cl, err := os.ReadFile(changelog)
	if err != nil {
		return err
	}
	notes, err := release.Notes(string(cl), o.Version)
	if err != nil {
		return err
	}
	notes += fmt.Sprintf("\n## Images\n\nBuilt with %s; `make images VERSION=%s` on the tag rebuilds these digests.\n\n", runtime.Version(), o.Version)
	for _, b := range built {
		notes += fmt.Sprintf("- `%s`\n", b.Ref(o.Version))
	}
	if err := os.WriteFile(filepath.Join(o.Dist, notesFile), []byte(notes), 0o644); err != nil {
		return err
	}
	return release.WriteSums(o.Dist)
}

// sourceDateEpoch is $SOURCE_DATE_EPOCH, else the Unix epoch: never the
// clock, which would give every build another digest.
func sourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q is not a number of seconds", s)
	}
	return time.Unix(n, 0).UTC(), nil
}
