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

func importFile(env Env, file, format string, opts convertOptions) error {
	r, err := openInput(env, file)
	if err != nil {
		return err
	}
	defer func() { _ = r.Close() }()
	var in metallbSet
	if err := in.read(r); err != nil {
		return fmt.Errorf("reading %s: %w", file, err)
	}
	return writeImport(env, convert(&in, opts), format)
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

func importCluster(ctx context.Context, env Env, c *clients, format string, opts convertOptions) error {
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
	// Services: the same ones a file would yield (kubectl get services -A),
	// less those without MetalLB annotations, which need nothing.
	svcs, err := c.kube.CoreV1().Services(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing Services: %w", err)
	}
	for _, svc := range svcs.Items {
		if hasMetalLBAnnotation(svc.Annotations) {
			in.services = append(in.services, svc)
			found = true
		}
	}
	if !found {
		return fmt.Errorf("the cluster serves no metallb.io resources and no Service has a MetalLB annotation; pass -f FILE with MetalLB objects")
	}
	return writeImport(env, convert(&in, opts), format)
}

// writeImport prints the herald objects to env.Out, and to env.Err the
// report: one line per refusal, loss and note. It fails when an object was
// refused, so that the exit status says the output is not the whole input. Only herald objects are ever
// printed as objects, so that yaml and json output can be applied as they
// are; the herald annotations Services lack are kubectl annotate commands
// in annotateBlock, at the end of the YAML output, and for -o json on
// env.Err before the diagnostics, since a JSON document has no comments.
// -o table lists the Services among the objects.
func writeImport(env Env, res converted, format string) error {
	if err := renderImport(env.Out, res, format); err != nil {
		return err
	}
	if format == "json" {
		if _, err := io.WriteString(env.Err, annotateBlock(res.Services)); err != nil {
			return err
		}
	}
	if err := renderDiagnostics(env.Err, &res.Report); err != nil {
		return err
	}
	if n := len(res.Report.refused); n > 0 {
		return refusedError{n: n, allowLossy: res.Report.allowLossy}
	}
	return nil
}

func renderDiagnostics(w io.Writer, r *report) error {
	lines := r.lines()
	if len(lines) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString(r.header() + "\n")
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// annotatePrefix begins every line of annotateBlock that holds a command,
// and no other line of import-metallb's output (diagnostics never begin
// with "#", their header not with this), so that
// grep '^# kubectl annotate ' | cut -c3- extracts the commands from stdout
// (yaml) or stderr (json) alike.
const annotatePrefix = "# kubectl annotate "

// annotateBlock is the kubectl annotate command of every Service update,
// in the order of svcs (namespace/name), under a header; "" without any.
// Each is a comment, so the block can end a YAML stream meant for kubectl
// apply.
func annotateBlock(svcs []serviceUpdate) string {
	if len(svcs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("# Service annotations: run these (they add herald's annotations; MetalLB's\n")
	b.WriteString("# stay until you remove them):\n")
	for _, u := range svcs {
		b.WriteString("# " + u.command() + "\n")
	}
	return b.String()
}

// objects returns the converted herald objects as maps without the fields
// a new object never carries (creationTimestamp, status), in output order,
// and the key of each for its comments.
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
		for _, u := range res.Services {
			_, _ = fmt.Fprintf(tw, "Service\t%s\t%s\n", svcName(u.Namespace, u.Name), strings.Join(u.From, ", "))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	default:
		b.WriteString("# Converted from MetalLB by heraldctl import-metallb.\n")
		if len(res.Services) > 0 {
			b.WriteString("# Applying this changes no Service: the kubectl annotate commands at the\n")
			b.WriteString("# end give the Services herald's annotations.\n")
		}
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
		if len(res.Services) > 0 {
			// No "---" before it: comments after the last object belong to
			// it, where a separator would open an empty document.
			b.WriteString("\n" + annotateBlock(res.Services))
		}
	}
	_, err = w.Write(b.Bytes())
	return err
}
