package bgpplan

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
)

// Class is one attribute class of a peer's export filter: the extra
// attributes (Route.Extra) the filter adds to the prefixes of one address
// family that are in the class. A peer has one class per distinct extra
// attribute set and family, however many prefixes share it, so the
// filter grows with the variety of attributes, not with the prefixes.
type Class struct {
	Attrs Attrs
	V6    bool
}

// ID names the class within its peer's filter: the family and a hash of
// the attributes, so that the same attributes always map to the same
// class and GoBGP object names stay short.
func (c *Class) ID() string {
	h := sha256.New()
	var b [12]byte
	for _, v := range c.Attrs.Communities {
		binary.BigEndian.PutUint32(b[:4], v)
		h.Write([]byte{'c'})
		h.Write(b[:4])
	}
	for _, v := range c.Attrs.Large {
		binary.BigEndian.PutUint32(b[0:4], v.Global)
		binary.BigEndian.PutUint32(b[4:8], v.Local1)
		binary.BigEndian.PutUint32(b[8:12], v.Local2)
		h.Write([]byte{'l'})
		h.Write(b[:12])
	}
	if c.Attrs.HasLocalPref {
		binary.BigEndian.PutUint32(b[:4], c.Attrs.LocalPref)
		h.Write([]byte{'p'})
		h.Write(b[:4])
	}
	fam := "v4-"
	if c.V6 {
		fam = "v6-"
	}
	return fam + hex.EncodeToString(h.Sum(nil)[:8])
}

// ClassSet is a class as a peer's filter holds it, with its prefixes
// (never empty: an emptied class is deleted).
type ClassSet struct {
	Class
	Prefixes map[netip.Prefix]struct{}
}

// classOf is the class, by ID, that holds pfx in classes, "" if none.
// A peer has few classes, so a scan beats keeping an index in step.
func classOf(classes map[string]*ClassSet, pfx netip.Prefix) string {
	for id, cs := range classes {
		if _, ok := cs.Prefixes[pfx]; ok {
			return id
		}
	}
	return ""
}

// wantClass is the class r puts pfx in for peer, "" for none, and the
// class itself.
func wantClass(r *Route, peer string) (string, *Class) {
	e := r.ExtraFor(peer)
	if e == nil || !r.Allows(peer) {
		return "", nil
	}
	c := &Class{Attrs: *e, V6: r.Prefix.Addr().Is6()}
	return c.ID(), c
}
