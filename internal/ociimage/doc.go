// Package ociimage builds herald's container images without a container
// engine or a registry: static binaries on an empty base, one image per
// platform under one OCI image index, written as an OCI image layout and as
// a tar archive of that layout (what `ctr images import`, `skopeo copy
// oci-archive:` and `crane push` read).
//
// Every input that could vary between two builds of the same commit (file
// times, owners, the creation time, map order) is fixed or taken from the
// caller's SourceDateEpoch, so the same binaries always give the same
// digests. It must not import herald's controller, speaker or networking
// packages: it is a build tool.
package ociimage
