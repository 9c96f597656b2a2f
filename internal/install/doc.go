// Package install renders herald's kustomize bases (config/) into the
// single manifest users apply (manifests/install.yaml), and its tests prove
// that manifest installs: every object is accepted by a real API server
// (server-side apply, dry run), and the RBAC it grants matches what the
// binaries need and no more.
//
// It renders with sigs.k8s.io/kustomize/api (krusty), the library behind
// `kubectl apply -k`, so no kustomize binary is needed. It must not import
// herald's controller, speaker or networking packages.
package install
