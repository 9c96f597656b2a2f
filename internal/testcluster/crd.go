package testcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
)

const (
	// crdTimeout bounds the wait for one CRD to be served.
	crdTimeout = 30 * time.Second
	// crdCreateHold is how long after a CRD becomes Established the API
	// server delays creates of its resources, plus a margin for the
	// difference between its clock reading and ours.
	crdCreateHold = 2*time.Second + 100*time.Millisecond
)

// InstallCRDs creates (or updates) every CustomResourceDefinition in the
// *.yaml and *.yml files of dir and waits until each is Established and
// listed by discovery: Established alone still leaves a short window in
// which clients that map kinds through discovery fail with "no matches".
func (c *Cluster) InstallCRDs(ctx context.Context, dir string) error {
	crds, err := readCRDs(dir)
	if err != nil {
		return fmt.Errorf("installing CRDs: %w", err)
	}
	cs, err := apiextclient.NewForConfig(c.Config)
	if err != nil {
		return fmt.Errorf("installing CRDs: %w", err)
	}
	crdClient := cs.ApiextensionsV1().CustomResourceDefinitions()
	for _, crd := range crds {
		if err := applyCRD(ctx, crdClient, crd); err != nil {
			return fmt.Errorf("installing CRD %s: %w", crd.Name, err)
		}
	}
	dc, err := discovery.NewDiscoveryClientForConfig(c.Config)
	if err != nil {
		return fmt.Errorf("installing CRDs: %w", err)
	}
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		return fmt.Errorf("installing CRDs: %w", err)
	}
	var lastEstablished time.Time
	for _, crd := range crds {
		established, err := waitCRDServed(ctx, crdClient, dc, crd)
		if err != nil {
			return fmt.Errorf("waiting for CRD %s: %w", crd.Name, err)
		}
		if established.After(lastEstablished) {
			lastEstablished = established
		}
		// The first request for a resource builds its watch cache (about
		// a second); paying that here keeps it out of tests' timings.
		for _, v := range crd.Spec.Versions {
			if !v.Served {
				continue
			}
			gvr := schema.GroupVersionResource{Group: crd.Spec.Group, Version: v.Name, Resource: crd.Spec.Names.Plural}
			if _, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
				return fmt.Errorf("listing %s: %w", gvr, err)
			}
		}
	}
	// kube-apiserver holds every create of a custom resource for 2 s while
	// its CRD is less than 2 s Established (for HA peers to catch up; see
	// customresource_handler.go). Waiting that out here means a test's
	// first create is as fast as any other.
	select {
	case <-time.After(time.Until(lastEstablished.Add(crdCreateHold))):
	case <-ctx.Done():
		return fmt.Errorf("installing CRDs: %w", ctx.Err())
	}
	return nil
}

func readCRDs(dir string) ([]*apiextv1.CustomResourceDefinition, error) {
	var files []string
	for _, pattern := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.yaml or *.yml files in %s", dir)
	}
	var crds []*apiextv1.CustomResourceDefinition
	for _, file := range files {
		got, err := readCRDFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", file, err)
		}
		crds = append(crds, got...)
	}
	return crds, nil
}

func readCRDFile(file string) ([]*apiextv1.CustomResourceDefinition, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var crds []*apiextv1.CustomResourceDefinition
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	for doc := 1; ; doc++ {
		crd := &apiextv1.CustomResourceDefinition{}
		if err := dec.Decode(crd); errors.Is(err, io.EOF) {
			return crds, nil
		} else if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if crd.Kind == "" && crd.Name == "" {
			continue // an empty document, e.g. after a trailing "---"
		}
		if crd.Kind != "CustomResourceDefinition" {
			return nil, fmt.Errorf("document %d is a %q, not a CustomResourceDefinition", doc, crd.Kind)
		}
		crds = append(crds, crd)
	}
}

type crdInterface interface {
	Create(context.Context, *apiextv1.CustomResourceDefinition, metav1.CreateOptions) (*apiextv1.CustomResourceDefinition, error)
	Get(context.Context, string, metav1.GetOptions) (*apiextv1.CustomResourceDefinition, error)
	Update(context.Context, *apiextv1.CustomResourceDefinition, metav1.UpdateOptions) (*apiextv1.CustomResourceDefinition, error)
}

func applyCRD(ctx context.Context, client crdInterface, crd *apiextv1.CustomResourceDefinition) error {
	_, err := client.Create(ctx, crd.DeepCopy(), metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	// Installing a directory twice (a lab re-run) updates in place.
	cur, err := client.Get(ctx, crd.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	upd := crd.DeepCopy()
	upd.ResourceVersion = cur.ResourceVersion
	_, err = client.Update(ctx, upd, metav1.UpdateOptions{})
	return err
}

// waitCRDServed returns when the CRD's Established condition became true.
func waitCRDServed(ctx context.Context, client crdInterface, dc discovery.DiscoveryInterface, crd *apiextv1.CustomResourceDefinition) (time.Time, error) {
	var last error
	var established time.Time
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, crdTimeout, true, func(ctx context.Context) (bool, error) {
		cur, err := client.Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			last = err
			return false, nil
		}
		for _, cond := range cur.Status.Conditions {
			if cond.Type == apiextv1.NamesAccepted && cond.Status == apiextv1.ConditionFalse {
				return false, fmt.Errorf("names not accepted: %s", cond.Message)
			}
		}
		var ok bool
		if established, ok = crdEstablished(cur); !ok {
			last = errors.New("not Established yet")
			return false, nil
		}
		for _, v := range crd.Spec.Versions {
			if !v.Served {
				continue
			}
			gv := crd.Spec.Group + "/" + v.Name
			list, err := dc.ServerResourcesForGroupVersion(gv)
			if err != nil {
				last = err
				return false, nil
			}
			if !slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool {
				return r.Name == crd.Spec.Names.Plural
			}) {
				last = fmt.Errorf("%s not in discovery for %s yet", crd.Spec.Names.Plural, gv)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil && last != nil && wait.Interrupted(err) {
		return time.Time{}, fmt.Errorf("%w (last: %v)", err, last)
	}
	return established, err
}

func crdEstablished(crd *apiextv1.CustomResourceDefinition) (time.Time, bool) {
	for _, cond := range crd.Status.Conditions {
		if cond.Type == apiextv1.Established && cond.Status == apiextv1.ConditionTrue {
			return cond.LastTransitionTime.Time, true
		}
	}
	return time.Time{}, false
}
