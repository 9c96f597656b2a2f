package ctl

import (
	"fmt"
	"slices"
	"strings"
)

// import-metallb never widens: a MetalLB object herald cannot express
// exactly is refused, the reason named on stderr, unless --allow-lossy is
// given and a narrower-or-equal form exists (fewer nodes, interfaces,
// peers, Services or namespaces, never more); then that form is converted
// and the loss printed as a warning. What converts exactly but still needs
// the reader (a Secret to copy, a value MetalLB itself rounds) is a note.

// level orders the report: refusals first, as they are what the exit
// status is about.
type level int

const (
	levelRefused level = iota
	levelLossy
	levelNote
)

var levelPrefix = map[level]string{levelRefused: "refused: ", levelLossy: "lossy: ", levelNote: "note: "}

// finding is one line of import-metallb's report.
type finding struct {
	level level
	text  string
}

// report collects the findings of one conversion and which MetalLB objects
// were refused.
type report struct {
	allowLossy bool
	findings   []finding
	refused    map[string]bool // by ref()
}

func (r *report) add(l level, text string) {
	r.findings = append(r.findings, finding{l, text})
}

// at names an object and, when set, the field a finding is about.
func at(ref, field string) string {
	if field == "" {
		return ref
	}
	return ref + " " + field
}

// refuse records that the object ref cannot be converted at all: herald
// has no form of it that is not wider, or MetalLB itself refuses it.
func (r *report) refuse(ref, field, format string, args ...any) {
	r.refused[ref] = true
	r.add(levelRefused, at(ref, field)+": "+fmt.Sprintf(format, args...))
}

// narrow records that the object ref cannot be converted exactly, but
// that lossy (a narrower-or-equal form) could stand in. It reports
// whether the caller may convert that form: with --allow-lossy the loss is
// a warning, without it the object is refused and the line says what
// --allow-lossy would do.
func (r *report) narrow(ref, field, reason, lossy string) bool {
	if r.allowLossy {
		r.add(levelLossy, at(ref, field)+": "+reason+"; narrowed: "+lossy)
		return true
	}
	r.refused[ref] = true
	r.add(levelRefused, at(ref, field)+": "+reason+" (--allow-lossy: "+lossy+")")
	return false
}

// note records something converted exactly that the reader still has to
// know or do.
func (r *report) note(format string, args ...any) {
	r.add(levelNote, fmt.Sprintf(format, args...))
}

func (r *report) count(l level) int {
	n := 0
	for _, f := range r.findings {
		if f.level == l {
			n++
		}
	}
	return n
}

// lines are the findings, refusals first, each group in the order found.
func (r *report) lines() []string {
	fs := slices.Clone(r.findings)
	slices.SortStableFunc(fs, func(a, b finding) int { return int(a.level) - int(b.level) })
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = levelPrefix[f.level] + f.text
	}
	return out
}

func (r *report) header() string {
	var parts []string
	if n := len(r.refused); n > 0 {
		parts = append(parts, fmt.Sprintf("%d MetalLB object(s) refused", n))
	}
	if n := r.count(levelLossy); n > 0 {
		parts = append(parts, fmt.Sprintf("%d loss(es) taken with --allow-lossy", n))
	}
	if n := r.count(levelNote); n > 0 {
		parts = append(parts, fmt.Sprintf("%d note(s)", n))
	}
	return "# import-metallb: " + strings.Join(parts, ", ") + ":"
}

// refusedError is what import-metallb returns when it refused anything:
// the output holds every other object, and the exit status says it is not
// the whole input.
type refusedError struct {
	n          int
	allowLossy bool
}

func (e refusedError) Error() string {
	if e.allowLossy {
		return fmt.Sprintf("%d MetalLB object(s) refused: no form of them is narrower or equal (lines starting \"refused:\")", e.n)
	}
	return fmt.Sprintf("%d MetalLB object(s) refused (lines starting \"refused:\"); --allow-lossy converts those whose line names a narrower form", e.n)
}
