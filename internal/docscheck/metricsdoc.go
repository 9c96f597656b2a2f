package docscheck

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// docEntry is one metric section of docs/metrics.md:
//
//	### `herald_name`
//	| Type | gauge |
//	| Labels | `a`, `b` |   (or: none)
//	| Exported by | `herald-speaker` (:7473) |
type docEntry struct {
	Line     int
	Type     string
	Labels   []string
	Binaries []string
}

type metricsDoc struct {
	Entries map[string]*docEntry
	// Mentions are every herald_ name in the text (sections, prose and
	// example queries), with the line it is on; a trailing * is a prefix.
	Mentions []mention
}

type mention struct {
	Name string
	Line int
}

var (
	headingRE  = regexp.MustCompile("^###\\s+`([a-zA-Z_:][a-zA-Z0-9_:]*)`")
	rowRE      = regexp.MustCompile(`^\|\s*(Type|Labels|Exported by)\s*\|(.*)\|\s*$`)
	backtickRE = regexp.MustCompile("`([^`]+)`")
	mentionRE  = regexp.MustCompile(`\bherald_[a-zA-Z0-9_]*\*?`)
)

func parseMetricsDoc(text string) metricsDoc {
	doc := metricsDoc{Entries: map[string]*docEntry{}}
	var cur *docEntry
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		for _, m := range mentionRE.FindAllString(line, -1) {
			doc.Mentions = append(doc.Mentions, mention{m, n})
		}
		if strings.HasPrefix(line, "#") {
			cur = nil
			if m := headingRE.FindStringSubmatch(line); m != nil {
				cur = &docEntry{Line: n}
				doc.Entries[m[1]] = cur
			}
			continue
		}
		m := rowRE.FindStringSubmatch(line)
		if cur == nil || m == nil {
			continue
		}
		cell := strings.TrimSpace(m[2])
		switch m[1] {
		case "Type":
			cur.Type = strings.Trim(cell, "` ")
		case "Labels":
			cur.Labels = []string{}
			for _, b := range backtickRE.FindAllStringSubmatch(cell, -1) {
				cur.Labels = append(cur.Labels, b[1])
			}
			slices.Sort(cur.Labels)
		case "Exported by":
			for _, b := range backtickRE.FindAllStringSubmatch(cell, -1) {
				if !strings.HasPrefix(b[1], ":") {
					cur.Binaries = append(cur.Binaries, b[1])
				}
			}
			slices.Sort(cur.Binaries)
		}
	}
	return doc
}

// Doc is docs/metrics.md, parsed.
type Doc struct {
	metricsDoc
	path string
}

// ReadDoc parses the metrics reference at path.
func ReadDoc(path string) (*Doc, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the metrics reference: %w", err)
	}
	return &Doc{metricsDoc: parseMetricsDoc(string(text)), path: path}, nil
}

// CheckBinary lists every disagreement between the herald_ metrics binary
// registers (ms) and the document: a metric not documented, or documented
// with another type, other labels, or without binary among its exporters;
// and a section naming binary as an exporter of a metric it does not
// register. A metric whose type its collector cannot tell before it
// emits (Type "") has its type checked by CheckTypes.
func (d *Doc) CheckBinary(binary string, ms []Metric) []string {
	var problems []string
	registered := map[string]bool{}
	for _, m := range ms {
		if !strings.HasPrefix(m.Name, "herald_") {
			continue // the Go and process collectors, documented as a group
		}
		registered[m.Name] = true
		e, ok := d.Entries[m.Name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s (%s, registered by %s) is not documented: add a \"### `%s`\" section", m.Name, m.Type, binary, m.Name))
			continue
		}
		if m.Type != "" && e.Type != m.Type {
			problems = append(problems, fmt.Sprintf("line %d: %s: documented as %s, %s registers a %s", e.Line, m.Name, e.Type, binary, m.Type))
		}
		if e.Labels == nil {
			problems = append(problems, fmt.Sprintf("line %d: %s: no \"| Labels |\" row (write none when it has none)", e.Line, m.Name))
		} else if !slices.Equal(e.Labels, m.Labels) {
			problems = append(problems, fmt.Sprintf("line %d: %s: documented labels %v, %s registers %v", e.Line, m.Name, e.Labels, binary, m.Labels))
		}
		if !slices.Contains(e.Binaries, binary) {
			problems = append(problems, fmt.Sprintf("line %d: %s: documented as exported by %v, but %s registers it", e.Line, m.Name, e.Binaries, binary))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(d.Entries)) {
		if e := d.Entries[name]; slices.Contains(e.Binaries, binary) && !registered[name] {
			problems = append(problems, fmt.Sprintf("line %d: %s: documented as exported by %s, which registers no such metric", e.Line, name, binary))
		}
	}
	return problems
}

// CheckTypes compares the types of gathered herald_ metrics with the
// document: for collectors that show their types only in what they emit.
func (d *Doc) CheckTypes(mfs []*dto.MetricFamily) []string {
	var problems []string
	for _, mf := range mfs {
		name := mf.GetName()
		e, ok := d.Entries[name]
		if !strings.HasPrefix(name, "herald_") || !ok {
			continue // CheckBinary reports what is not documented
		}
		if got := strings.ToLower(mf.GetType().String()); e.Type != got {
			problems = append(problems, fmt.Sprintf("line %d: %s: documented as %s, emitted as %s", e.Line, name, e.Type, got))
		}
	}
	return problems
}

// CheckSections lists sections that name no binary or one that is not in
// binaries (the commands that exist), and herald_ names in the text
// (prose and example queries) that are no documented metric. With every
// binary checked by CheckBinary, that makes every name on the page true.
func (d *Doc) CheckSections(binaries []string) []string {
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(d.Entries)) {
		e := d.Entries[name]
		if len(e.Binaries) == 0 {
			problems = append(problems, fmt.Sprintf("line %d: %s: no \"| Exported by |\" binary", e.Line, name))
		}
		for _, b := range e.Binaries {
			if !slices.Contains(binaries, b) {
				problems = append(problems, fmt.Sprintf("line %d: %s: exported by %s, which is not one of %v", e.Line, name, b, binaries))
			}
		}
	}
	known := d.known()
	for _, m := range d.Mentions {
		if _, isSection := d.Entries[m.Name]; isSection {
			continue
		}
		if prefix, ok := strings.CutSuffix(m.Name, "*"); ok {
			if !slices.ContainsFunc(slices.Collect(maps.Keys(known)), func(x string) bool { return strings.HasPrefix(x, prefix) }) {
				problems = append(problems, fmt.Sprintf("%s (line %d): matches no metric", m.Name, m.Line))
			}
			continue
		}
		if _, ok := series(m.Name, known); !ok {
			problems = append(problems, fmt.Sprintf("%s (line %d): no such metric", m.Name, m.Line))
		}
	}
	return problems
}

// known are the documented metrics.
func (d *Doc) known() map[string]Metric {
	out := make(map[string]Metric, len(d.Entries))
	for name, e := range d.Entries {
		out[name] = Metric{Name: name, Type: e.Type, Labels: e.Labels}
	}
	return out
}

// series resolves a series name to its metric: the name itself, or a
// histogram's or summary's _bucket, _sum or _count series.
func series(name string, known map[string]Metric) (Metric, bool) {
	if m, ok := known[name]; ok {
		return m, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if m, ok := known[base]; ok && (m.Type == "histogram" || m.Type == "summary") && (suffix != "_bucket" || m.Type == "histogram") {
			return m, true
		}
	}
	return Metric{}, false
}
