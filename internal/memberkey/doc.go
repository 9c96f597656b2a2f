// Package memberkey reads the memberlist keys that the herald-memberlist
// Secret holds and names them by fingerprint. The Secret's "key" entry is
// a list of base64 keys separated by white space or commas; the first
// encrypts, all decrypt, so a key can be rotated without a restart. One
// key alone, the format of the first release, is a list of one.
//
// A fingerprint (the first 8 bytes of the key's SHA-256, in hex) names a
// key in Speaker objects, logs and heraldctl without revealing it. The
// package is pure: the speaker, its membership and heraldctl share it, so
// it must not import client-go, memberlist or any other herald package.
package memberkey
