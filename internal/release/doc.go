// Package release turns built binaries into what a herald release ships:
// the controller and speaker images as OCI archives (internal/ociimage),
// install.yaml with both images pinned by tag and digest, the release notes
// taken from CHANGELOG.md, and SHA256SUMS over every artifact. `make images`
// and `make release` drive it through hack/release; it runs no compiler and
// no container engine, and must not import herald's controller, speaker or
// networking packages.
package release
