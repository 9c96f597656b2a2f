package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version and Revision are set at build time (make build VERSION=v0.1.0);
// a plain `go build` leaves Version "dev" and takes Revision from the VCS
// information Go embeds when it builds inside a git checkout.
var (
	Version  = "dev"
	Revision = ""
)

// Info is what a build says about itself.
type Info struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	GoVersion string `json:"goVersion"`
}

// Get returns this build's information.
func Get() Info {
	rev := Revision
	if rev == "" {
		rev = vcsRevision()
	}
	if rev == "" {
		rev = "unknown"
	}
	return Info{Version: Version, Revision: rev, GoVersion: runtime.Version()}
}

func vcsRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" && dirty {
		rev += "-dirty"
	}
	return rev
}

// String is the one line --version prints.
func (i Info) String() string {
	return fmt.Sprintf("%s (revision %s, %s)", i.Version, i.Revision, i.GoVersion)
}
