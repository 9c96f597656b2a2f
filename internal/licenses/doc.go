// Package licenses checks that every module herald's code is built from is
// under a licence on an allowed list, so that a dependency under an
// unknown or unwanted licence fails `make verify` instead of shipping.
//
// A module's licence is read from the licence files at the root of its
// directory in the module cache and identified by github.com/google/
// licensecheck. A module whose files cannot be identified with confidence
// fails the check unless it is named, with the licence a person verified
// and why, in the exceptions file. It must not import herald's packages.
package licenses
