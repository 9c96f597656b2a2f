package privilege

import (
	"bufio"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseStatus(t *testing.T) {
	const status = `Name:	herald-speaker
Uid:	0	65532	65532	65532
Gid:	0	65532	65532	65532
CapInh:	0000000000000000
CapPrm:	0000000000002000
CapEff:	0000000000002000
CapBnd:	00000000000020c0
CapAmb:	0000000000000000
NoNewPrivs:	1
`
	st, err := parseStatus(bufio.NewScanner(strings.NewReader(status)))
	if err != nil {
		t.Fatal(err)
	}
	want := State{UID: 65532, GID: 65532, Effective: Of(unix.CAP_NET_RAW), Permitted: Of(unix.CAP_NET_RAW),
		Bounding: Of(unix.CAP_NET_RAW, unix.CAP_SETUID, unix.CAP_SETGID), NoNewPrivs: true}
	if st != want {
		t.Errorf("got %+v, want %+v", st, want)
	}
	if _, err := parseStatus(bufio.NewScanner(strings.NewReader("CapEff:\tzz\n"))); err == nil {
		t.Error("a bad CapEff parsed")
	}
}

func TestSetString(t *testing.T) {
	for _, tc := range []struct {
		s    Set
		want string
	}{
		{0, "none"},
		{Of(unix.CAP_NET_RAW), "NET_RAW"},
		{Of(unix.CAP_SETGID, unix.CAP_SETUID, unix.CAP_NET_RAW), "SETGID,SETUID,NET_RAW"},
		{Of(40), "CAP_40"},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("%x: %q, want %q", uint64(tc.s), got, tc.want)
		}
	}
	if !Of(1, 2, 3).Has(Of(1, 3)) || Of(1).Has(Of(1, 2)) {
		t.Error("Has is wrong")
	}
}
