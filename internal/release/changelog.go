package release

import (
	"fmt"
	"regexp"
	"strings"
)

// sectionHeading matches a Keep a Changelog release heading:
// "## [0.1.0] - 2026-12-04" or "## [Unreleased]".
var sectionHeading = regexp.MustCompile(`^## \[([^\]]+)\]`)

// Notes returns the CHANGELOG.md section of version (with or without its
// leading v). A pre-release version (v0.2.0-rc.1, v0.0.0-test) without a
// section of its own gets the [Unreleased] section: what it would release.
func Notes(changelog, version string) (string, error) {
	want := strings.TrimPrefix(version, "v")
	sections := map[string]string{}
	var name string
	var body []string
	flush := func() {
		if name != "" {
			sections[name] = strings.TrimSpace(strings.Join(body, "\n"))
		}
	}
	for _, line := range strings.Split(changelog, "\n") {
		if m := sectionHeading.FindStringSubmatch(line); m != nil {
			flush()
			name, body = strings.TrimPrefix(m[1], "v"), []string{line}
			continue
		}
		if name != "" && strings.HasPrefix(line, "[") && strings.Contains(line, "]: ") {
			continue // link reference definitions at the end of the file
		}
		body = append(body, line)
	}
	flush()
	if s, ok := sections[want]; ok {
		return s + "\n", nil
	}
	if strings.Contains(want, "-") {
		if s, ok := sections["Unreleased"]; ok {
			return fmt.Sprintf("# %s (pre-release)\n\n%s\n", version, s), nil
		}
	}
	return "", fmt.Errorf("CHANGELOG.md has no section for %s: add '## [%s] - DATE' before releasing it", version, want)
}

// Latest returns the newest released version in changelog (the first
// heading that is not [Unreleased]), with a leading v.
func Latest(changelog string) (string, error) {
	for _, line := range strings.Split(changelog, "\n") {
		if m := sectionHeading.FindStringSubmatch(line); m != nil && m[1] != "Unreleased" {
			return "v" + strings.TrimPrefix(m[1], "v"), nil
		}
	}
	return "", fmt.Errorf("CHANGELOG.md lists no release")
}
