package ctl

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
)

// PoolUsage is one row of `heraldctl pools`: one IPPool and family.
type PoolUsage struct {
	Pool      string `json:"pool"`
	Family    string `json:"family"`
	Total     string `json:"total"`
	Allocated int64  `json:"allocated"`
	Free      string `json:"free"`
	Ready     string `json:"ready"`
	Reason    string `json:"reason,omitempty"`
	Message   string `json:"message,omitempty"`
}

func pools(ctx context.Context, env Env, c *clients, format string) error {
	list, err := c.herald.HeraldV1alpha1().IPPools().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing IPPools: %w", err)
	}
	rows := buildPools(list.Items)
	if format != "table" {
		return printStructured(env.Out, format, map[string]any{"pools": rows})
	}
	return renderPoolsTable(env.Out, rows)
}

func buildPools(items []heraldv1.IPPool) []PoolUsage {
	rows := []PoolUsage{}
	for _, p := range items { // the API lists them by name
		ready, reason, msg := "Unknown", "", "no status yet"
		if c := meta.FindStatusCondition(p.Status.Conditions, heraldv1.ConditionReady); c != nil {
			ready, reason, msg = string(c.Status), c.Reason, c.Message
		}
		if c := meta.FindStatusCondition(p.Status.Conditions, heraldv1.ConditionInUseOutsideSpec); c != nil && c.Status == metav1.ConditionTrue {
			reason += "; " + heraldv1.ConditionInUseOutsideSpec
			msg += "; " + c.Message
		}
		add := func(fam string, u *heraldv1.FamilyUsage) {
			r := PoolUsage{Pool: p.Name, Family: fam, Total: "-", Free: "-", Ready: ready, Reason: reason, Message: msg}
			if u != nil {
				r.Total, r.Allocated, r.Free = u.Total, u.Allocated, u.Free
			}
			rows = append(rows, r)
		}
		if p.Status.IPv4 != nil {
			add("IPv4", p.Status.IPv4)
		}
		if p.Status.IPv6 != nil {
			add("IPv6", p.Status.IPv6)
		}
		if p.Status.IPv4 == nil && p.Status.IPv6 == nil {
			add("-", nil)
		}
	}
	return rows
}

func renderPoolsTable(w io.Writer, rows []PoolUsage) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "POOL\tFAMILY\tTOTAL\tALLOCATED\tFREE\tREADY\tREASON")
	for _, r := range rows {
		reason := r.Reason
		if r.Ready != string(metav1.ConditionTrue) && r.Message != "" {
			reason = strings.TrimPrefix(reason+": "+r.Message, ": ")
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Pool, r.Family, r.Total, r.Allocated, r.Free, r.Ready, dash(reason))
	}
	return tw.Flush()
}
