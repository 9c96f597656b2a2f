package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

func importFile(env Env, file, format string) error {
	r, err := openInput(env, file)
	if err != nil {
		return err
	}
	defer func() { _ = r.Close() }()
	var in metallbSet
	if err := in.read(r); err != nil {
		return fmt.Errorf("reading %s: %w", file, err)
	}
	return writeImport(env, convert(&in), format)
}

// metallbResources are read from the cluster in this order; for BGPPeer
// the first version served wins.
var metallbResources = []struct {
	resource string
	versions []string
}{
	{"ipaddresspools", []string{"v1beta1"}},
	{"l2advertisements", []string{"v1beta1"}},
	{"bgpadvertisements", []string{"v1beta1"}},
	{"communities", []string{"v1beta1"}},
	{"bgppeers", []string{"v1beta2", "v1beta1"}},
	{"bfdprofiles", []string{"v1beta1"}},
}

func importCluster(ctx context.Context, env Env, c *clients, format string) error {
	var in metallbSet
	found := false
	for _, r := range metallbResources {
		for _, v := range r.versions {
			gvr := schema.GroupVersionResource{Group: "metallb.io", Version: v, Resource: r.resource}
			list, err := c.dynamic.Resource(gvr).List(ctx, metav1.ListOptions{})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("listing %s: %w", gvr.GroupResource(), err)
			}
			found = true
			data, err := json.Marshal(list)
			if err != nil {
				return fmt.Errorf("encoding %s: %w", gvr.GroupResource(), err)
			}
			if err := in.add(data); err != nil {
				return err
			}
			break
		}
	}
	if !found {
		return fmt.Errorf("the cluster serves no metallb.io resources; pass -f FILE with MetalLB objects")
	}
	return writeImport(env, convert(&in), format)
}

// writeImport prints the herald objects to env.Out and what could not be
// carried over to env.Err, one line each.
func writeImport(env Env, res converted, format string) error {
	if err := renderImport(env.Out, res, format); err != nil {
		return err
	}
	return renderDiagnostics(env.Err, res)
}

func renderDiagnostics(w io.Writer, res converted) error {
	if len(res.Diagnostics) == 0 {
		return nil
	}
	var b strings.Builder
	_, _ = fmt.Fprintf(&b, "# %d thing(s) could not be carried over exactly:\n", len(res.Diagnostics))
	for _, d := range res.Diagnostics {
		b.WriteString(d + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// objects returns the converted objects as maps without the fields a new
// object never carries (creationTimestamp, status), in output order, and
// the key of each for its comments.
func (res converted) objects() ([]map[string]any, []string, error) {
	var out []map[string]any
	var keys []string
	add := func(key string, v any) error {
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return err
		}
		delete(m, "status")
		if meta, ok := m["metadata"].(map[string]any); ok {
			delete(meta, "creationTimestamp")
		}
		out, keys = append(out, m), append(keys, key)
		return nil
	}
	for _, p := range res.Pools {
		if err := add("IPPool/"+p.Name, p); err != nil {
			return nil, nil, err
		}
	}
	for _, p := range res.Peers {
		if err := add("BGPPeer/"+p.Name, p); err != nil {
			return nil, nil, err
		}
	}
	return out, keys, nil
}

func renderImport(w io.Writer, res converted, format string) error {
	objs, keys, err := res.objects()
	if err != nil {
		return fmt.Errorf("encoding herald objects: %w", err)
	}
	var b bytes.Buffer
	switch format {
	case "json":
		if objs == nil {
			objs = []map[string]any{}
		}
		return printStructured(w, "json", map[string]any{"apiVersion": "v1", "kind": "List", "items": objs})
	case "table":
		tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
		_, _ = fmt.Fprintln(tw, "KIND\tNAME\tFROM")
		for _, k := range keys {
			kind, name, _ := strings.Cut(k, "/")
			from := ""
			for _, c := range res.Comments[k] {
				if f, ok := strings.CutPrefix(c, "from "); ok {
					from = f
				}
			}
			_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\n", kind, name, from)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	default:
		b.WriteString("# Converted from MetalLB by heraldctl import-metallb.\n")
		for i, o := range objs {
			b.WriteString("---\n")
			for _, c := range res.Comments[keys[i]] {
				b.WriteString("# " + c + "\n")
			}
			data, err := yaml.Marshal(o)
			if err != nil {
				return fmt.Errorf("encoding %s: %w", keys[i], err)
			}
			b.Write(data)
		}
	}
	_, err = w.Write(b.Bytes())
	return err
}
