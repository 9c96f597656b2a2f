package install

import (
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Header starts the rendered manifest; it says where the file comes from.
const Header = `# herald install manifest. Generated from config/default by
# hack/update-manifests.sh (make generate); do not edit.
#
#   kubectl apply --server-side -f manifests/install.yaml
#   kubectl create secret generic herald-memberlist -n herald-system \
#     --from-literal=key="$(openssl rand -base64 32)"
`

// Render runs kustomize build on the kustomization in dir (a path on
// disk) and returns the resulting multi-document YAML, preceded by Header.
func Render(dir string) ([]byte, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("building kustomization %s: %w", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("encoding kustomization %s: %w", dir, err)
	}
	return append([]byte(Header+"---\n"), out...), nil
}

// Image replaces one image of the manifests, as kustomize's `images:`
// field does: every container image named Name becomes NewName:NewTag,
// pinned to Digest when it is set.
type Image struct {
	Name    string `json:"name"`
	NewName string `json:"newName,omitempty"`
	NewTag  string `json:"newTag,omitempty"`
	Digest  string `json:"digest,omitempty"`
}

// RenderWithImages renders the kustomization in dir with images replaced,
// through a kustomization of its own in a temporary directory that uses
// dir as its base: what an operator's overlay with `images:` would do.
func RenderWithImages(dir string, images []Image) ([]byte, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "herald-render-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	// kustomize takes bases only as relative paths.
	base, err := filepath.Rel(tmp, abs)
	if err != nil {
		return nil, err
	}
	overlay, err := yaml.Marshal(map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1",
		"kind":       "Kustomization",
		"resources":  []string{base},
		"images":     images,
	})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "kustomization.yaml"), overlay, 0o644); err != nil {
		return nil, err
	}
	return Render(tmp)
}
