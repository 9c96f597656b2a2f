package licenses

import (
	"strings"
	"testing"
)

// TestCheck shows the check failing on a dependency whose licence is not
// allowed (GPL-3.0, as a COPYING file), on one it cannot identify and on
// one without a licence file, and passing an allowed one and a verified
// exception.
func TestCheck(t *testing.T) {
	p := Policy{
		Allowed:    map[string]bool{"MIT": true, "Apache-2.0": true},
		Exceptions: map[string]string{"example.com/checked": "Apache-2.0", "example.com/checked-gpl": "GPL-3.0"},
	}
	for _, tc := range []struct {
		mod, dir, want string // want: "" for a pass, else part of the problem
	}{
		{"example.com/mit", "testdata/mit", ""},
		{"example.com/gpl", "testdata/gpl", "licence GPL-3.0 is not on the allowed list"},
		{"example.com/unknown", "testdata/unknown", "matches a known licence"},
		{"example.com/none", "testdata/none", "no licence file identified"},
		{"example.com/missing", "testdata/missing", "reading the module directory"},
		{"example.com/checked", "testdata/unknown", ""},
		{"example.com/checked-gpl", "testdata/mit", "from the exceptions file"},
	} {
		t.Run(tc.mod, func(t *testing.T) {
			r := Check([]Module{{Path: tc.mod, Version: "v1.0.0", Dir: tc.dir}}, p)[0]
			switch {
			case tc.want == "" && r.Problem != "":
				t.Errorf("fails: %s", r.Problem)
			case tc.want != "" && !strings.Contains(r.Problem, tc.want):
				t.Errorf("problem %q, want one containing %q (licences %v)", r.Problem, tc.want, r.Licenses)
			}
		})
	}
}

func TestReadList(t *testing.T) {
	got, err := ReadList(strings.NewReader("# comment\nMIT\n\n  example.com/x   Apache-2.0 # why\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0][0] != "MIT" || got[1][0] != "example.com/x" || got[1][1] != "Apache-2.0" {
		t.Errorf("got %q", got)
	}
}
