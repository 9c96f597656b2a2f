package ctl

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
)

// unknownFields lists the paths under spec of a MetalLB object (JSON) that
// the Go type t does not declare: fields of a newer MetalLB that
// import-metallb would otherwise drop without a word. Types from other
// packages (label selectors, durations) are taken as they are.
func unknownFields(j []byte, t reflect.Type) []string {
	var obj struct {
		Spec any `json:"spec"`
	}
	if json.Unmarshal(j, &obj) != nil {
		return nil
	}
	f, ok := t.FieldByName("Spec")
	if !ok {
		return nil
	}
	var out []string
	walkUnknown("spec", obj.Spec, f.Type, &out)
	slices.Sort(out)
	return out
}

func walkUnknown(path string, v any, t reflect.Type, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch val := v.(type) {
	case []any:
		if t.Kind() != reflect.Slice {
			return
		}
		for _, item := range val {
			walkUnknown(path+"[]", item, t.Elem(), out)
		}
	case map[string]any:
		if t.Kind() != reflect.Struct || t.PkgPath() != reflect.TypeFor[mlbObject]().PkgPath() && t.Name() != "" {
			return
		}
		fields := jsonFields(t)
		for k, sub := range val {
			ft, ok := fields[k]
			if !ok {
				*out = append(*out, path+"."+k)
				continue
			}
			walkUnknown(path+"."+k, sub, ft, out)
		}
	}
}

// jsonFields maps the JSON names of t's fields, inline structs included,
// to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && (name == "" || strings.Contains(opts, "inline")) {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
