// Command dropper is built by privilege's privileged test without cgo: it
// calls Drop as herald-speaker does, then shows what it has and whether it
// can still open a raw socket and switch back to root.
package main

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/heraldlb/herald/internal/privilege"
)

func main() {
	err := privilege.Drop(65532, 65532, privilege.Of(unix.CAP_NET_RAW))
	st, cerr := privilege.Current()
	if cerr != nil {
		fmt.Println("current:", cerr)
		os.Exit(1)
	}
	fd, rawErr := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if rawErr == nil {
		_ = unix.Close(fd)
	}
	fmt.Printf("drop=%v uid=%d gid=%d eff=%s prm=%s raw=%v setuid0=%v\n",
		err, st.UID, st.GID, st.Effective, st.Permitted, rawErr, syscall.Setresuid(0, 0, 0))
}
