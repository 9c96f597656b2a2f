package install

import (
	"fmt"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
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
