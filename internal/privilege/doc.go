// Package privilege lets herald-speaker start as root with a few
// capabilities and go on as an unprivileged user that keeps only the ones
// it uses, so that neither file capabilities on its binary nor privilege
// escalation (no_new_privs off) are needed.
//
// A non-root container gets no capabilities from Kubernetes' add list:
// without ambient capabilities, the kernel empties the permitted set when
// a non-root user executes a binary without file capabilities. So the
// speaker's container runs as uid 0 with NET_RAW, SETUID and SETGID only;
// the speaker switches every thread to its own user with the keep-caps
// flag, then sets its capabilities to exactly NET_RAW. SETUID and SETGID
// are gone for good: no_new_privs forbids regaining them.
//
// Linux keeps capabilities and the keep-caps flag per thread, so every
// change goes through syscall.AllThreadsSyscall, which only works in
// binaries built without cgo (herald's release binaries are static). It
// must not import anything of herald's.
package privilege
