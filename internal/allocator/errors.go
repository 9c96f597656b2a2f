package allocator

import "errors"

// Sentinel errors callers branch on with errors.Is. Every error returned by
// Allocate wraps exactly one of them, with a message that names the address,
// pool or Service involved so it can go straight into an Event.
var (
	// ErrInvalidRequest: the Service asks for something contradictory,
	// such as two IPv4 addresses or a malformed address.
	ErrInvalidRequest = errors.New("invalid address request")
	// ErrWrongFamily: a requested address is of a family the Service does not use.
	ErrWrongFamily = errors.New("address family not used by the service")
	// ErrNotInPool: a requested address lies in no IPPool.
	ErrNotInPool = errors.New("address is not in any IPPool")
	// ErrPoolNotFound: the named pool does not exist.
	ErrPoolNotFound = errors.New("IPPool not found")
	// ErrPoolNotReady: the pool exists but is unusable (overlap or invalid addresses).
	ErrPoolNotReady = errors.New("IPPool is not ready")
	// ErrPoolNotAllowed: the pool's selectors or namespaces exclude the Service.
	ErrPoolNotAllowed = errors.New("IPPool does not allow this service")
	// ErrNoPool: no pool is eligible for automatic assignment.
	ErrNoPool = errors.New("no IPPool is eligible")
	// ErrPoolExhausted: eligible pools exist but have no free address of a needed family.
	ErrPoolExhausted = errors.New("no free address")
	// ErrAddressInUse: the address is held by a Service it may not be shared with.
	ErrAddressInUse = errors.New("address already in use")
	// ErrPortCollision: sharing the address would put two Services on one protocol and port.
	ErrPortCollision = errors.New("port collision on shared address")
	// ErrSharingIncompatible: sharing is refused because externalTrafficPolicy
	// Local Services must share with Local Services that select the same endpoints.
	ErrSharingIncompatible = errors.New("services cannot share an address")
)

// Reason maps an error from this package to a short CamelCase reason for an
// Event or a condition; "AllocationFailed" when it is none of ours.
func Reason(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{ErrInvalidRequest, "InvalidRequest"},
		{ErrWrongFamily, "WrongFamily"},
		{ErrNotInPool, "NotInPool"},
		{ErrPoolNotFound, "PoolNotFound"},
		{ErrPoolNotReady, "PoolNotReady"},
		{ErrPoolNotAllowed, "PoolNotAllowed"},
		{ErrNoPool, "NoPool"},
		{ErrPoolExhausted, "PoolExhausted"},
		{ErrAddressInUse, "AddressInUse"},
		{ErrPortCollision, "PortCollision"},
		{ErrSharingIncompatible, "SharingIncompatible"},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "AllocationFailed"
}
