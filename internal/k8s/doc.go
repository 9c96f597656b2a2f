// Package k8s holds the Kubernetes-facing vocabulary the controller and the
// speaker share: which Services are herald's (load-balancer class), the
// herald.dev annotations, and how an IPPool and a Service's status read
// as addresses, and the patient dial (dial.go) both binaries' API clients
// use. It knows nothing of allocation or announcement and must not import
// internal/controller, internal/speaker or any package that announces.
package k8s
