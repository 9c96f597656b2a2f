// Package testcluster runs a real, throwaway Kubernetes control plane
// (etcd, kube-apiserver and optionally kube-controller-manager) as child
// processes on loopback, for integration tests and the e2e lab.
//
// It exists because herald's behaviour depends on what a real API server
// does: field validation and CEL rules of its CRDs, RBAC, the
// EndpointSlice controller, watch reconnects after an API outage. A fake
// clientset checks none of that. The binaries are built from the pinned
// k8s.io/kubernetes and etcd modules by hack/k8sbin.sh (`make k8sbin`)
// and found through [BinDir]; when they are missing, [ForTest] fails the
// test with the command to run rather than skipping it.
//
// Everything a cluster writes lives in one temporary data directory
// (on /dev/shm when it exists, since etcd is the slow part) that
// [Cluster.Stop] removes. The package is test and lab support only: it
// must not be imported by anything under cmd/ or by packages those
// binaries import (depguard enforces this).
package testcluster
