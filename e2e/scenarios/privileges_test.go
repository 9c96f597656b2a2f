//go:build privileged

package scenarios

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestSpeakerPrivileges checks what the lab's speakers run with: started
// as the manifest's container is (root, its capability set, no_new_privs),
// each has switched to 65532:65532 keeping only CAP_NET_RAW, and the L2
// scenarios that follow prove that this is enough.
func TestSpeakerPrivileges(t *testing.T) {
	const netRaw = 1 << 13
	for _, node := range theLab.Nodes() {
		p, ok := theLab.Proc(node, "herald-speaker")
		if !ok {
			t.Fatalf("no speaker on %s", node)
		}
		raw, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/status")
		if err != nil {
			t.Fatal(err)
		}
		fields := map[string][]string{}
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				fields[k] = strings.Fields(v)
			}
		}
		capEff, _ := strconv.ParseUint(fields["CapEff"][0], 16, 64)
		capPrm, _ := strconv.ParseUint(fields["CapPrm"][0], 16, 64)
		t.Logf("%s: speaker pid %d Uid %v Gid %v CapEff %s CapPrm %s CapBnd %s NoNewPrivs %v", node, p.PID,
			fields["Uid"], fields["Gid"], fields["CapEff"][0], fields["CapPrm"][0], fields["CapBnd"][0], fields["NoNewPrivs"])
		for _, k := range []string{"Uid", "Gid"} {
			for _, id := range fields[k] {
				if id != "65532" {
					t.Errorf("%s: speaker %s %v, want 65532 throughout", node, k, fields[k])
					break
				}
			}
		}
		if capEff != netRaw || capPrm != netRaw {
			t.Errorf("%s: speaker capabilities effective %#x permitted %#x, want only NET_RAW (%#x)", node, capEff, capPrm, netRaw)
		}
		if fields["NoNewPrivs"][0] != "1" {
			t.Errorf("%s: speaker runs without no_new_privs", node)
		}
	}
}
