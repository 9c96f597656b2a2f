// Command render writes the kustomize build of a directory (default
// config/default) to a file (default manifests/install.yaml). It is run by
// hack/update-manifests.sh from the repository root.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/heraldlb/herald/internal/install"
)

func main() {
	dir := flag.String("dir", "config/default", "kustomization directory to render")
	out := flag.String("out", "manifests/install.yaml", "file to write")
	flag.Parse()
	b, err := install.Render(*dir)
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}
