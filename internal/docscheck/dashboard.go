package docscheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// targetLabels are the labels Prometheus attaches to every series of a
// scrape target, beside a metric's own labels: job and instance always,
// namespace, pod, container and endpoint from the Prometheus Operator's
// PodMonitor, and node from the relabeling in config/prometheus/monitor.yaml.
// The dashboard may group and filter by them.
var targetLabels = []string{"container", "endpoint", "instance", "job", "namespace", "node", "pod"}

// CheckDashboard validates a Grafana dashboard's structure and checks that
// its queries name only documented metrics and their labels (the document
// itself is checked against the binaries' registries).
func (d *Doc) CheckDashboard(data []byte) []string { return checkDashboard(data, d.known()) }

var (
	selectorRE = regexp.MustCompile(`\b(herald_[a-zA-Z0-9_]+)\s*\{([^}]*)\}`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	groupingRE = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	metricRE   = regexp.MustCompile(`\bherald_[a-zA-Z0-9_]+`)
	labelValRE = regexp.MustCompile(`label_values\(\s*(herald_[a-zA-Z0-9_]+)[^,)]*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`)
)

const dsUID = "${datasource}"

// checkDashboard validates the dashboard's structure and every query.
func checkDashboard(data []byte, known map[string]Metric) []string {
	var problems []string
	var d struct {
		Title         string            `json:"title"`
		UID           string            `json:"uid"`
		SchemaVersion int               `json:"schemaVersion"`
		Panels        []json.RawMessage `json:"panels"`
		Templating    struct {
			List []struct {
				Name       string          `json:"name"`
				Type       string          `json:"type"`
				Query      json.RawMessage `json:"query"`
				Datasource json.RawMessage `json:"datasource"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return []string{fmt.Sprintf("not valid dashboard JSON: %v", err)}
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion == 0 || len(d.Panels) == 0 {
		problems = append(problems, "title, uid, schemaVersion and panels must all be set")
	}

	var queries []string // "where: expr"
	hasDS := false
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			var q string
			_ = json.Unmarshal(v.Query, &q)
			if v.Name == "datasource" && q == "prometheus" {
				hasDS = true
			}
		case "query":
			if p := checkDatasource(v.Datasource); p != "" {
				problems = append(problems, fmt.Sprintf("variable %s: %s", v.Name, p))
			}
			var q string
			if json.Unmarshal(v.Query, &q) != nil {
				var obj struct {
					Query string `json:"query"`
				}
				_ = json.Unmarshal(v.Query, &obj)
				q = obj.Query
			}
			queries = append(queries, "variable "+v.Name+": "+q)
		}
	}
	if !hasDS {
		problems = append(problems, `no templating variable {"name": "datasource", "type": "datasource", "query": "prometheus"}`)
	}

	ids := map[int]string{}
	var walk func([]json.RawMessage)
	walk = func(panels []json.RawMessage) {
		for _, raw := range panels {
			var p struct {
				ID         int               `json:"id"`
				Type       string            `json:"type"`
				Title      string            `json:"title"`
				Datasource json.RawMessage   `json:"datasource"`
				Panels     []json.RawMessage `json:"panels"`
				GridPos    *struct {
					H, W, X, Y int
				} `json:"gridPos"`
				Targets []struct {
					RefID      string          `json:"refId"`
					Expr       string          `json:"expr"`
					Datasource json.RawMessage `json:"datasource"`
				} `json:"targets"`
			}
			if err := json.Unmarshal(raw, &p); err != nil {
				problems = append(problems, fmt.Sprintf("panel: %v", err))
				continue
			}
			where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
			if prev, dup := ids[p.ID]; dup || p.ID == 0 {
				problems = append(problems, fmt.Sprintf("%s: id must be unique and non-zero (also used by %q)", where, prev))
			}
			ids[p.ID] = p.Title
			if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
				problems = append(problems, where+": gridPos missing")
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if pr := checkDatasource(p.Datasource); pr != "" {
				problems = append(problems, where+": "+pr)
			}
			if len(p.Targets) == 0 {
				problems = append(problems, where+": no targets")
			}
			for _, tg := range p.Targets {
				if tg.Expr == "" || tg.RefID == "" {
					problems = append(problems, where+": a target without expr or refId")
				}
				if len(tg.Datasource) > 0 {
					if pr := checkDatasource(tg.Datasource); pr != "" {
						problems = append(problems, where+" target "+tg.RefID+": "+pr)
					}
				}
				queries = append(queries, where+" target "+tg.RefID+": "+tg.Expr)
			}
		}
	}
	walk(d.Panels)

	for _, q := range queries {
		where, expr, _ := strings.Cut(q, ": ")
		for _, p := range checkPromQL(expr, known) {
			problems = append(problems, where+": "+p)
		}
	}
	return problems
}

func checkDatasource(raw json.RawMessage) string {
	var ds struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	if json.Unmarshal(raw, &ds) != nil || ds.Type != "prometheus" || ds.UID != dsUID {
		var got bytes.Buffer
		if json.Compact(&got, raw) != nil {
			got.Write(raw)
		}
		return fmt.Sprintf(`datasource must be {"type": "prometheus", "uid": %q}, got %s`, dsUID, got.String())
	}
	return ""
}

// checkPromQL reports herald_ names that are no metric, and label names in
// selectors, groupings and label_values that none of the query's metrics
// (nor the scrape target) has.
func checkPromQL(expr string, known map[string]Metric) []string {
	var problems []string
	allowed := map[string]bool{"le": true}
	for _, l := range targetLabels {
		allowed[l] = true
	}
	for _, name := range metricRE.FindAllString(expr, -1) {
		m, ok := series(name, known)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: no such metric", name))
			continue
		}
		for _, l := range m.Labels {
			allowed[l] = true
		}
	}
	check := func(label, ctx string) {
		if !allowed[label] {
			problems = append(problems, fmt.Sprintf("label %q (%s): no metric in this query has it", label, ctx))
		}
	}
	for _, s := range selectorRE.FindAllStringSubmatch(expr, -1) {
		m, ok := series(s[1], known)
		if !ok {
			continue
		}
		own := map[string]bool{"le": strings.HasSuffix(s[1], "_bucket")}
		for _, l := range append(slices.Clone(m.Labels), targetLabels...) {
			own[l] = true
		}
		for _, mm := range matcherRE.FindAllStringSubmatch(s[2], -1) {
			if !own[mm[1]] {
				problems = append(problems, fmt.Sprintf("label %q in the selector of %s: the metric has no such label", mm[1], s[1]))
			}
		}
	}
	for _, g := range groupingRE.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				check(l, "grouping")
			}
		}
	}
	for _, lv := range labelValRE.FindAllStringSubmatch(expr, -1) {
		check(lv[2], "label_values")
	}
	return problems
}
