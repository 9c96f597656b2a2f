package cpvip

import (
	"net/netip"
	"testing"

	"github.com/heraldlb/herald/internal/election"
)

func TestOwner(t *testing.T) {
	vip := netip.MustParseAddr("198.51.100.100")
	names := []string{"cp1", "cp2", "cp3"}
	top := election.Owner(names, vip)
	var others []string
	for _, n := range names {
		if n != top {
			others = append(others, n)
		}
	}
	second := election.Owner(others, vip)
	all := func(f func(name string) Member) []Member {
		var out []Member
		for _, n := range names {
			out = append(out, f(n))
		}
		return out
	}
	tests := []struct {
		name    string
		members []Member
		want    string
	}{
		{"nobody healthy", all(func(n string) Member { return Member{Name: n} }), ""},
		{"no holder: the highest rank takes it", all(func(n string) Member { return Member{Name: n, Healthy: true} }), top},
		{"the only healthy one, whatever its rank", all(func(n string) Member { return Member{Name: n, Healthy: n == second} }), second},
		{"a holder keeps it against a higher rank", all(func(n string) Member {
			return Member{Name: n, Healthy: true, Holding: n == second}
		}), second},
		{"an unhealthy holder does not", all(func(n string) Member {
			return Member{Name: n, Healthy: n != second, Holding: n == second}
		}), top},
		{"two holders after a partition: the higher rank stays", all(func(n string) Member {
			return Member{Name: n, Healthy: true, Holding: n == top || n == second}
		}), top},
		{"the order of members does not matter", []Member{{Name: "cp3", Healthy: true}, {Name: "cp1", Healthy: true}, {Name: "cp2", Healthy: true}}, top},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Owner(tt.members, vip); got != tt.want {
				t.Errorf("Owner = %q, want %q", got, tt.want)
			}
		})
	}
	if top == second {
		t.Fatal("test setup: top and second are the same node")
	}
}
