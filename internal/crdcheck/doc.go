// Package crdcheck validates custom objects against herald's generated CRDs
// offline, with the API server's own code: defaulting, OpenAPI schema,
// list types and CEL rules, plus the checks the API server makes on the
// CRDs themselves (CEL compilation and cost budget). Tests use it to catch
// a rule that does not compile or misjudges an object, and to prove that
// generated objects (heraldctl import-metallb) would be accepted, without
// starting an API server.
//
// It is for tests: binaries must not import it (it links a large part of
// apiextensions-apiserver).
package crdcheck
